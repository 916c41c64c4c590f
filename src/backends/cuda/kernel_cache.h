// Kernels generated as CUDA source at run time (fused elementwise groups), compiled with
// NVRTC for the GPU they run on and cached: in memory for the process, and on disk so that a
// second process compiles nothing. A disk entry is keyed by a hash of everything that shapes
// the binary (the source, the NVRTC options, the NVRTC and driver versions) and holds that
// key text in full, so a hash collision reads as a miss. The disk cache is best effort: an
// unwritable directory only costs the next process a compile.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <string>

namespace loom::cuda {

// The cache directory for CompileOptions::kernel_cache (`option`): the option when set, else
// $LOOM_KERNEL_CACHE, else $XDG_CACHE_HOME/loom/kernels or ~/.cache/loom/kernels. "off" (in
// the option or the variable) turns the disk cache off: the result is empty.
std::string kernel_cache_directory(const std::string& option);

// Where an image came from, for tests and the benchmark's cold/warm figures.
struct KernelCacheStats {
  uint64_t compiled = 0;     // NVRTC runs
  uint64_t disk_hits = 0;    // images read from the cache directory
  uint64_t memory_hits = 0;  // kernels found already loaded in this process
};
KernelCacheStats kernel_cache_stats();
// Forgets the loaded kernels (tests: the next request reads the disk or compiles).
void clear_kernel_memory_cache();

// Compiles `source` with NVRTC for compute capability `arch` (90 for sm_90: a cubin; an arch
// newer than NVRTC knows gets PTX of the newest it does), reading and writing the disk cache
// in `cache_dir` (empty: none). Returns the image (cubin or PTX). Needs no GPU. A failed
// compile throws loom::Error(device) carrying the NVRTC log and the path the source was
// written to.
std::string compile_kernel_image(const std::string& source, int arch, const std::string& cache_dir);

// The kernel `name` of `source` for the current device, compiled and loaded once per process
// (a cudaKernel_t serves every device). Throws loom::Error(device) on failure.
cudaKernel_t generated_kernel(const std::string& source, const char* name,
                              const std::string& cache_dir);

}  // namespace loom::cuda
