// The weight files a version 2 package references (docs/package-format.md, "Referenced
// weights"): finding, at save, which tensors of a package are byte for byte a tensor of a
// GGUF or safetensors file, and opening and checking those files at load.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "io/mapped_file.h"
#include "package/package_format.h"

namespace loom::package {

// Where a stored path points: itself when absolute, else beside the package at
// `package_path`.
std::string resolve_file(const std::string& stored, const std::string& package_path);

// Maps files[index] (resolved beside `package_path`) and checks its size and XXH64 checksum
// against the table; loom::Error(io) naming the package, the file as stored and as resolved,
// and what differs (missing, another size, another checksum).
std::shared_ptr<const io::MappedFile> open_file(const PackedFile& file,
                                                const std::string& package_path);

// Adds to `contents` (nodes already packed, their tensor attributes host-contiguous) a file
// for each of `weight_files` that holds at least one of its tensors, and a reference for every
// tensor attribute whose bytes equal a tensor of one of them. Paths are stored relative to the
// package's directory unless `absolute_paths`. loom::Error(io) when a file is no GGUF or
// safetensors file or cannot be read.
void reference_weights(PackageContents& contents, const std::vector<std::string>& weight_files,
                       const std::string& package_path, bool absolute_paths);

}  // namespace loom::package
