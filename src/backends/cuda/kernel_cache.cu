#include <nvrtc.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <random>
#include <sstream>
#include <vector>

#include "backends/cuda/cuda_error.h"
#include "backends/cuda/kernel_cache.h"
#include "loom/error.h"

namespace loom::cuda {

namespace {

std::atomic<uint64_t> g_compiled{0}, g_disk_hits{0}, g_memory_hits{0};

std::mutex& cache_mutex() {
  static std::mutex m;
  return m;
}

// Loaded kernels by (arch, key text).
std::map<std::pair<int, std::string>, cudaKernel_t>& loaded() {
  static auto* m = new std::map<std::pair<int, std::string>, cudaKernel_t>();  // outlives exit
  return *m;
}

uint64_t fnv1a(const std::string& s, uint64_t h) {
  for (unsigned char c : s) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return h;
}

// 128 bits of hash as 32 hex digits: two FNV-1a streams with different offsets.
std::string hash_hex(const std::string& s) {
  char buf[40];
  std::snprintf(buf, sizeof buf, "%016llx%016llx",
                static_cast<unsigned long long>(fnv1a(s, 14695981039346656037ull)),
                static_cast<unsigned long long>(fnv1a(s, 0x9e3779b97f4a7c15ull)));
  return buf;
}

void check_nvrtc(nvrtcResult r, const char* what) {
  if (r != NVRTC_SUCCESS)
    fail(ErrorKind::device, std::string("NVRTC error in ") + what + ": " + nvrtcGetErrorString(r));
}

// The NVRTC option naming the target: a cubin for an arch NVRTC knows, else PTX for the
// newest it knows (the driver compiles PTX for newer GPUs).
std::pair<std::string, bool> arch_option(int arch) {
  int count = 0;
  check_nvrtc(nvrtcGetNumSupportedArchs(&count), "nvrtcGetNumSupportedArchs");
  std::vector<int> archs(size_t(std::max(count, 0)));
  if (count > 0) check_nvrtc(nvrtcGetSupportedArchs(archs.data()), "nvrtcGetSupportedArchs");
  if (std::find(archs.begin(), archs.end(), arch) != archs.end())
    return {"--gpu-architecture=sm_" + std::to_string(arch), true};
  int best = 0;
  for (int a : archs)
    if (a <= arch) best = std::max(best, a);
  if (best == 0) fail(ErrorKind::device, "NVRTC cannot compile for sm_" + std::to_string(arch));
  return {"--gpu-architecture=compute_" + std::to_string(best), false};
}

std::string versions() {
  int major = 0, minor = 0, driver = 0;
  check_nvrtc(nvrtcVersion(&major, &minor), "nvrtcVersion");
  (void)cudaDriverGetVersion(&driver);  // 0 without a driver: compiling needs none
  return "nvrtc " + std::to_string(major) + "." + std::to_string(minor) + ", driver " +
         std::to_string(driver);
}

constexpr char kMagic[] = "LOOM-KERNEL-CACHE-1\n";

bool read_entry(const std::filesystem::path& path, const std::string& key, std::string& image) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return false;
  std::string magic(sizeof kMagic - 1, '\0');
  uint64_t key_size = 0, image_size = 0;
  if (!f.read(magic.data(), std::streamsize(magic.size())) || magic != kMagic) return false;
  if (!f.read(reinterpret_cast<char*>(&key_size), 8) || key_size != key.size()) return false;
  std::string stored(key_size, '\0');
  if (!f.read(stored.data(), std::streamsize(key_size)) || stored != key) return false;
  if (!f.read(reinterpret_cast<char*>(&image_size), 8) || image_size > (uint64_t(1) << 30))
    return false;
  image.assign(image_size, '\0');
  return bool(f.read(image.data(), std::streamsize(image_size)));
}

// Written to a unique temporary name and renamed, so a reader never sees half an entry and
// two processes writing the same entry both succeed.
void write_entry(const std::filesystem::path& path, const std::string& key,
                 const std::string& image) {
  std::error_code ec;
  std::filesystem::create_directories(path.parent_path(), ec);
  std::random_device rd;
  const std::filesystem::path tmp =
      path.string() + ".tmp" + std::to_string(getpid()) + "_" + std::to_string(rd());
  {
    std::ofstream f(tmp, std::ios::binary);
    if (!f) return;
    const uint64_t key_size = key.size(), image_size = image.size();
    f.write(kMagic, sizeof kMagic - 1);
    f.write(reinterpret_cast<const char*>(&key_size), 8);
    f.write(key.data(), std::streamsize(key.size()));
    f.write(reinterpret_cast<const char*>(&image_size), 8);
    f.write(image.data(), std::streamsize(image.size()));
    if (!f) {
      f.close();
      std::filesystem::remove(tmp, ec);
      return;
    }
  }
  std::filesystem::rename(tmp, path, ec);
  if (ec) std::filesystem::remove(tmp, ec);
}

// Keeps the source of a failed compile where the user can read it.
std::string save_failed_source(const std::string& source, const std::string& cache_dir,
                               const std::string& hash) {
  std::error_code ec;
  std::filesystem::path dir = cache_dir.empty() ? std::filesystem::temp_directory_path(ec)
                                                : std::filesystem::path(cache_dir);
  std::filesystem::create_directories(dir, ec);
  const std::filesystem::path path = dir / ("failed_" + hash + ".cu");
  std::ofstream f(path);
  f << source;
  return f ? path.string() : std::string("(could not be written)");
}

std::string nvrtc_compile(const std::string& source, const std::vector<std::string>& options,
                          bool cubin, const std::string& cache_dir, const std::string& hash) {
  nvrtcProgram prog = nullptr;
  check_nvrtc(nvrtcCreateProgram(&prog, source.c_str(), "loom_fused.cu", 0, nullptr, nullptr),
              "nvrtcCreateProgram");
  struct Destroy {
    nvrtcProgram& p;
    ~Destroy() { nvrtcDestroyProgram(&p); }
  } destroy{prog};
  std::vector<const char*> opts;
  for (const auto& o : options) opts.push_back(o.c_str());
  const nvrtcResult result = nvrtcCompileProgram(prog, int(opts.size()), opts.data());
  ++g_compiled;
  if (result != NVRTC_SUCCESS) {
    size_t log_size = 0;
    std::string log;
    if (nvrtcGetProgramLogSize(prog, &log_size) == NVRTC_SUCCESS && log_size > 1) {
      log.resize(log_size);
      if (nvrtcGetProgramLog(prog, log.data()) != NVRTC_SUCCESS) log.clear();
      while (!log.empty() && (log.back() == '\0' || log.back() == '\n')) log.pop_back();
    }
    fail(ErrorKind::device, std::string("NVRTC could not compile a generated kernel (") +
                                nvrtcGetErrorString(result) + "); source in " +
                                save_failed_source(source, cache_dir, hash) + "; log:\n" + log);
  }
  size_t size = 0;
  std::string image;
  if (cubin) {
    check_nvrtc(nvrtcGetCUBINSize(prog, &size), "nvrtcGetCUBINSize");
    image.resize(size);
    check_nvrtc(nvrtcGetCUBIN(prog, image.data()), "nvrtcGetCUBIN");
  } else {
    check_nvrtc(nvrtcGetPTXSize(prog, &size), "nvrtcGetPTXSize");
    image.resize(size);
    check_nvrtc(nvrtcGetPTX(prog, image.data()), "nvrtcGetPTX");
  }
  return image;
}

}  // namespace

std::string kernel_cache_directory(const std::string& option) {
  std::string dir = option;
  if (dir.empty())
    if (const char* env = std::getenv("LOOM_KERNEL_CACHE")) dir = env;
  if (dir == "off") return "";
  if (!dir.empty()) return dir;
  if (const char* xdg = std::getenv("XDG_CACHE_HOME"); xdg && *xdg)
    return std::string(xdg) + "/loom/kernels";
  if (const char* home = std::getenv("HOME"); home && *home)
    return std::string(home) + "/.cache/loom/kernels";
  return "";
}

KernelCacheStats kernel_cache_stats() {
  return {g_compiled.load(), g_disk_hits.load(), g_memory_hits.load()};
}

void clear_kernel_memory_cache() {
  std::lock_guard lock(cache_mutex());
  loaded().clear();  // the libraries stay loaded: a plan may still launch their kernels
}

std::string compile_kernel_image(const std::string& source, int arch,
                                 const std::string& cache_dir) {
  const auto [target, cubin] = arch_option(arch);
  const std::vector<std::string> options = {target, "--std=c++17"};
  std::string key = "loom generated kernel\n" + versions() + "\noptions:";
  for (const auto& o : options) key += " " + o;
  key += "\n" + source;
  const std::string hash = hash_hex(key);
  std::string image;
  const std::filesystem::path path = cache_dir.empty()
                                         ? std::filesystem::path()
                                         : std::filesystem::path(cache_dir) / (hash + ".bin");
  if (!cache_dir.empty() && read_entry(path, key, image)) {
    ++g_disk_hits;
    return image;
  }
  image = nvrtc_compile(source, options, cubin, cache_dir, hash);
  if (!cache_dir.empty()) write_entry(path, key, image);
  return image;
}

cudaKernel_t generated_kernel(const std::string& source, const char* name,
                              const std::string& cache_dir) {
  int device = 0, major = 0, minor = 0;
  check_cuda(cudaGetDevice(&device), "cudaGetDevice");
  check_cuda(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device),
             "cudaDeviceGetAttribute");
  check_cuda(cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, device),
             "cudaDeviceGetAttribute");
  const int arch = major * 10 + minor;
  // One compile at a time: two plans needing the same kernel compile it once.
  std::lock_guard lock(cache_mutex());
  auto key = std::make_pair(arch, source);
  if (auto it = loaded().find(key); it != loaded().end()) {
    ++g_memory_hits;
    return it->second;
  }
  const std::string image = compile_kernel_image(source, arch, cache_dir);
  cudaLibrary_t library = nullptr;
  check_cuda(cudaLibraryLoadData(&library, image.data(), nullptr, nullptr, 0, nullptr, nullptr, 0),
             "cudaLibraryLoadData (generated kernel)");
  cudaKernel_t kernel = nullptr;
  check_cuda(cudaLibraryGetKernel(&kernel, library, name), "cudaLibraryGetKernel");
  loaded().emplace(std::move(key), kernel);
  return kernel;
}

}  // namespace loom::cuda
