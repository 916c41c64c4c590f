// Referenced weight files: matching a package's tensors to the tensors of GGUF and
// safetensors files by their bytes (so a reference is only ever written for bytes that are
// exactly the file's), and checking the files again at load.
#include "package/package_files.h"

#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>

#include "io/gguf.h"
#include "io/safetensors.h"
#include "loom/error.h"
#include "package/xxh64.h"

namespace loom::package {

namespace fs = std::filesystem;

namespace {

// Names from a package go into messages: keep them short and printable.
std::string printable(const std::string& s) {
  std::string out;
  for (char c : s.substr(0, 200)) out += (c >= 32 && c < 127) ? c : '?';
  return s.size() > 200 ? out + "..." : out;
}

bool starts_with_gguf(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  char magic[4] = {};
  in.read(magic, 4);
  return in && std::memcmp(magic, "GGUF", 4) == 0;
}

struct Span {
  uint64_t offset;
  const std::byte* bytes;
};

// One weight file's tensors, by size; the parsed file keeps the mapping alive.
struct WeightFile {
  std::string path;
  std::shared_ptr<void> parsed;
  std::multimap<uint64_t, Span> by_size;
  uint64_t size = 0;
};

WeightFile index_file(const std::string& path) {
  WeightFile w;
  w.path = path;
  if (starts_with_gguf(path)) {
    auto file = std::make_shared<io::GgufFile>(io::GgufFile::open(path));
    for (const auto& t : file->tensors())
      w.by_size.emplace(t.byte_size, Span{t.file_offset, file->tensor_bytes(t).data()});
    w.size = file->file_size();
    w.parsed = file;
  } else {
    std::shared_ptr<io::SafetensorsFile> file;
    try {
      file = std::make_shared<io::SafetensorsFile>(io::SafetensorsFile::open(path));
    } catch (const Error& e) {
      fail(ErrorKind::io,
           "weight file '" + path + "' is neither a GGUF nor a safetensors file: " + e.what());
    }
    for (const auto& t : file->tensors())
      w.by_size.emplace(t.end - t.begin, Span{t.file_offset, file->tensor_bytes(t).data()});
    w.size = file->file_size();
    w.parsed = file;
  }
  return w;
}

uint64_t checksum_of(const io::MappedFile& file) {
  // In pieces of 64 MiB, so a multi-GB file streams through the hash page by page.
  Xxh64 h;
  auto bytes = file.bytes();
  for (size_t at = 0; at < bytes.size(); at += size_t(64) << 20)
    h.update(bytes.subspan(at, std::min(bytes.size() - at, size_t(64) << 20)));
  return h.digest();
}

std::string stored_path(const std::string& weight_file, const std::string& package_path,
                        bool absolute) {
  fs::path weight = fs::absolute(weight_file).lexically_normal();
  if (absolute) return weight.string();
  fs::path dir = fs::absolute(package_path).lexically_normal().parent_path();
  fs::path relative = weight.lexically_relative(dir);
  return relative.empty() ? weight.string() : relative.string();
}

}  // namespace

std::string resolve_file(const std::string& stored, const std::string& package_path) {
  fs::path p(stored);
  if (p.is_absolute()) return stored;
  return (fs::path(package_path).parent_path() / p).lexically_normal().string();
}

std::shared_ptr<const io::MappedFile> open_file(const PackedFile& file,
                                                const std::string& package_path) {
  std::string resolved = resolve_file(file.path, package_path);
  std::string name = package_path + ": weight file '" + printable(file.path) + "'" +
                     (resolved == file.path ? "" : " (" + printable(resolved) + ")");
  std::shared_ptr<const io::MappedFile> mapped;
  try {
    mapped = std::make_shared<const io::MappedFile>(io::MappedFile::open(resolved));
  } catch (const Error& e) {
    fail(ErrorKind::io, name + " cannot be read (" + e.what() +
                            "): the package references its weights there; put the file "
                            "back, or save the package with its weights embedded");
  }
  if (mapped->size() != file.size)
    fail(ErrorKind::io, name + " has " + std::to_string(mapped->size()) +
                            " bytes; the package was saved against " + std::to_string(file.size) +
                            " (truncated, or another file?)");
  if (checksum_of(*mapped) != file.checksum)
    fail(ErrorKind::io, name +
                            ": its XXH64 checksum differs from the package's (modified since "
                            "the package was saved, or another file of the same size)");
  return mapped;
}

void reference_weights(PackageContents& c, const std::vector<std::string>& weight_files,
                       const std::string& package_path, bool absolute_paths) {
  std::vector<WeightFile> files;
  std::map<std::string, bool> seen;
  for (const auto& path : weight_files) {
    std::string key = fs::absolute(path).lexically_normal().string();
    if (seen.emplace(key, true).second) files.push_back(index_file(path));
  }
  // The package's index of each weight file, made when a tensor first matches it.
  std::vector<int64_t> table_index(files.size(), -1);
  auto reference = [&](const TensorData& t) {
    if (!t.defined() || t.nbytes() == 0 || !t.is_contiguous() || c.references.count(tensor_key(t)))
      return;
    const auto* bytes = static_cast<const std::byte*>(t.data());
    for (size_t f = 0; f < files.size(); ++f) {
      auto [first, last] = files[f].by_size.equal_range(t.nbytes());
      for (auto it = first; it != last; ++it) {
        if (std::memcmp(it->second.bytes, bytes, t.nbytes()) != 0) continue;
        if (table_index[f] < 0) {
          table_index[f] = int64_t(c.files.size());
          c.files.push_back(
              {stored_path(files[f].path, package_path, absolute_paths), files[f].size, 0});
        }
        c.references[tensor_key(t)] = {uint32_t(table_index[f]), it->second.offset};
        return;
      }
    }
  };
  for (const auto& node : c.nodes)
    for (const auto& [name, value] : node.attrs.items())
      if (const auto* t = std::get_if<TensorData>(&value)) reference(*t);
  // The checksum is over the whole file, read again through a mapping of its own.
  for (size_t f = 0; f < files.size(); ++f)
    if (table_index[f] >= 0)
      c.files[size_t(table_index[f])].checksum = checksum_of(io::MappedFile::open(files[f].path));
}

}  // namespace loom::package
