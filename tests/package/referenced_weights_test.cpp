// Packages that reference their weights (format version 2): a package referencing a GGUF or
// safetensors file gives bit for bit the outputs of one embedding them; a moved, missing,
// truncated or modified file, or a hostile reference, is a loom::Error(io) naming the file;
// version 1 packages (every weight embedded) still load.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <set>

#include "io/gguf.h"
#include "loom/package.h"
#include "package/package_format.h"
#include "test_util.h"

namespace loom {
namespace {

namespace fs = std::filesystem;

std::vector<std::byte> read_bytes(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::string s((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::vector<std::byte> b(s.size());
  std::memcpy(b.data(), s.data(), s.size());
  return b;
}

void write_bytes(const fs::path& path, const std::vector<std::byte>& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(bytes.data()), std::streamsize(bytes.size()));
}

// A directory of its own with a copy of tests/data/small.gguf (gguf-py's file) as
// weights.gguf, removed afterwards.
struct Dir {
  fs::path path;
  explicit Dir(const std::string& name)
      : path(fs::path(::testing::TempDir()) /
             ("loom_refs_" + name + "_" + std::to_string(::getpid()))) {
    fs::remove_all(path);
    fs::create_directories(path);
    fs::copy_file(fs::path(LOOM_TEST_DATA_DIR) / "small.gguf", gguf());
  }
  ~Dir() { fs::remove_all(path); }
  std::string gguf() const { return (path / "weights.gguf").string(); }
  std::string file(const std::string& name) const { return (path / name).string(); }
};

// A graph whose weights are the GGUF's tensors, read from it as a model loader would: w (f32
// [2,3], 0..5) and q (Q8_0 blocks as u8 [2,34]) variables, c (f16 [4]) a constant (added to a
// feed, so that constant folding keeps it); `extra` is in no file.
struct FileModel {
  Graph g;
  Tensor out, c_out, q_out;
  TensorData extra = testing::random_tensor(DType::f32, {3});
  explicit FileModel(const std::string& gguf) {
    io::GgufFile f = io::GgufFile::open(gguf);
    auto tensor = [&](const char* name, DType dtype, Extents shape) {
      auto bytes = f.tensor_bytes(*f.find_tensor(name));
      return TensorData::from_pointer(bytes.data(), dtype, std::move(shape));
    };
    Tensor x = g.placeholder("x", {"batch", 2});
    out = add(matmul(x, g.variable("w", tensor("f32", DType::f32, {2, 3}))),
              g.variable("extra", extra));
    Tensor y = g.placeholder("y", {4}, DType::f16);
    c_out = cast(add(y, g.constant(tensor("f16", DType::f16, {4}))), DType::f32);
    q_out = cast(g.variable("q", tensor("q8_0", DType::u8, {2, 34})), DType::f32);
  }
  Executable compiled() {
    CompileOptions o;
    o.outputs = {out, c_out, q_out};
    o.plan_for = {{{"batch", 2}}};
    return compile(g, o);
  }
};

const TensorData kX = TensorData::from_vector<float>({0.5f, -1.f, 2.f, 0.25f}, {2, 2});

std::vector<std::vector<float>> run(Executable& exe) {
  std::vector<std::vector<float>> out;
  for (const auto& t : exe.run({{"x", kX}, {"y", TensorData::zeros(DType::f16, {4})}}))
    out.push_back(t.to_vector<float>());
  return out;
}

std::vector<std::vector<float>> run_loaded(const std::string& path) {
  Executable exe = load(path);
  return run(exe);
}

std::string load_error(const std::string& path) {
  std::string message;
  EXPECT_EQ(testing::error_kind([&] { load(path); }, &message), ErrorKind::io) << message;
  return message;
}

}  // namespace

TEST(ReferencedWeights, SameOutputsAsEmbeddedBitForBit) {
  Dir d("roundtrip");
  FileModel m(d.gguf());
  Executable exe = m.compiled();
  SaveOptions refer;
  refer.weight_files = {d.gguf()};
  save(exe, d.file("ref.loompkg"), refer);
  SaveOptions embed = refer;
  embed.embed_weights = true;
  save(exe, d.file("emb.loompkg"), embed);

  EXPECT_EQ(referenced_files(d.file("ref.loompkg")), std::vector<std::string>{"weights.gguf"});
  EXPECT_TRUE(referenced_files(d.file("emb.loompkg")).empty());
  auto c = package::decode_package(read_bytes(d.file("ref.loompkg")), d.file("ref.loompkg"));
  EXPECT_EQ(c.format_version, 2u);
  ASSERT_EQ(c.files.size(), 1u);
  EXPECT_EQ(c.files[0].size, fs::file_size(d.gguf()));
  EXPECT_EQ(c.references.size(), 3u);  // w, q, c; not extra (in no file)
  // The references are at the GGUF's own offsets of those tensors.
  io::GgufFile f = io::GgufFile::open(d.gguf());
  std::set<uint64_t> offsets, want;
  for (const auto& [key, ref] : c.references) offsets.insert(ref.offset);
  for (const char* name : {"f32", "f16", "q8_0"}) want.insert(f.find_tensor(name)->file_offset);
  EXPECT_EQ(offsets, want);
  // Each reference holds a file index and an offset (12 bytes) instead of the bytes and a
  // "defined" byte; the table holds the path, size and checksum.
  EXPECT_EQ(fs::file_size(d.file("emb.loompkg")) - fs::file_size(d.file("ref.loompkg")),
            (24u + 8 + 68) - 3 * (12 - 1) - (4 + 12 + 8 + 8));

  Executable referenced = load(d.file("ref.loompkg"));
  Executable embedded = load(d.file("emb.loompkg"));
  EXPECT_NE(referenced.package_note().find("3 weights (0 MiB) read from 1 referenced file"),
            std::string::npos)
      << referenced.package_note();
  EXPECT_EQ(embedded.package_note().find("referenced"), std::string::npos);
  auto want_outputs = run(exe);
  EXPECT_EQ(run(referenced), want_outputs);
  EXPECT_EQ(run(embedded), want_outputs);
  // Against the file's values: w = [[0,1,2],[3,4,5]], c = (1,-2,0.5,4), q bytes 0..67.
  auto e = m.extra.to_vector<float>();
  std::vector<float> x = kX.to_vector<float>();
  for (int i = 0; i < 2; ++i)
    for (int j = 0; j < 3; ++j)
      EXPECT_FLOAT_EQ(want_outputs[0][size_t(i * 3 + j)],
                      x[size_t(i * 2)] * float(j) + x[size_t(i * 2 + 1)] * float(3 + j) + e[j]);
  EXPECT_EQ(want_outputs[1], (std::vector<float>{1, -2, 0.5f, 4}));
  for (size_t i = 0; i < 68; ++i) EXPECT_EQ(want_outputs[2][i], float(i));

  // Saved again, a loaded package keeps its references (or embeds them when asked).
  save(referenced, d.file("again.loompkg"));
  EXPECT_EQ(referenced_files(d.file("again.loompkg")), std::vector<std::string>{"weights.gguf"});
  SaveOptions only_embed;
  only_embed.embed_weights = true;
  save(referenced, d.file("self_contained.loompkg"), only_embed);
  EXPECT_TRUE(referenced_files(d.file("self_contained.loompkg")).empty());
  EXPECT_EQ(fs::file_size(d.file("self_contained.loompkg")), fs::file_size(d.file("emb.loompkg")));
  // Absolute paths on request; no weight files: everything embedded as before.
  SaveOptions absolute = refer;
  absolute.absolute_paths = true;
  save(exe, d.file("abs.loompkg"), absolute);
  EXPECT_EQ(referenced_files(d.file("abs.loompkg")),
            std::vector<std::string>{fs::absolute(d.gguf()).lexically_normal().string()});
  save(exe, d.file("plain.loompkg"));
  EXPECT_TRUE(referenced_files(d.file("plain.loompkg")).empty());
}

TEST(ReferencedWeights, SafetensorsFilesAndPathsBesideThePackage) {
  Dir d("safetensors");
  fs::create_directories(d.path / "packages");
  fs::copy_file(fs::path(LOOM_TEST_DATA_DIR) / "small.safetensors", d.file("w.safetensors"));
  // small.safetensors's "a" is 0..5 as f32 [2,3]: the same bytes as the GGUF's "f32".
  FileModel m(d.gguf());
  Executable exe = m.compiled();
  SaveOptions refer;
  refer.weight_files = {d.file("w.safetensors")};
  std::string pkg = (d.path / "packages" / "p.loompkg").string();
  save(exe, pkg, refer);
  EXPECT_EQ(referenced_files(pkg), std::vector<std::string>{"../w.safetensors"});
  Executable loaded = load(pkg);
  EXPECT_EQ(run(loaded), run(exe));
  EXPECT_NE(loaded.package_note().find("1 weights"), std::string::npos) << loaded.package_note();

  // A file that is neither format.
  write_bytes(d.file("junk.bin"), std::vector<std::byte>(64, std::byte{7}));
  refer.weight_files = {d.file("junk.bin")};
  std::string message;
  EXPECT_EQ(testing::error_kind([&] { save(exe, pkg, refer); }, &message), ErrorKind::io);
  EXPECT_NE(message.find("junk.bin' is neither a GGUF nor a safetensors file"), std::string::npos)
      << message;
}

TEST(ReferencedWeights, MovedMissingTruncatedOrModifiedFilesAreIoErrors) {
  Dir d("bad");
  FileModel m(d.gguf());
  Executable exe = m.compiled();
  SaveOptions refer;
  refer.weight_files = {d.gguf()};
  std::string pkg = d.file("p.loompkg");
  save(exe, pkg, refer);
  const auto weights = read_bytes(d.gguf());
  std::string message;

  // The package moved without its weights: the relative path finds nothing.
  fs::create_directories(d.path / "moved");
  std::string moved = (d.path / "moved" / "p.loompkg").string();
  fs::copy_file(pkg, moved);
  message = load_error(moved);
  EXPECT_NE(message.find("weight file 'weights.gguf' (" +
                         (d.path / "moved" / "weights.gguf").string() + ") cannot be read"),
            std::string::npos)
      << message;
  EXPECT_NE(message.find("No such file"), std::string::npos) << message;
  // ... and with them, it loads.
  fs::copy_file(d.gguf(), d.path / "moved" / "weights.gguf");
  EXPECT_EQ(run_loaded(moved), run(exe));

  fs::remove(d.gguf());
  EXPECT_NE(load_error(pkg).find("weights.gguf"), std::string::npos);

  auto truncated = weights;
  truncated.pop_back();
  write_bytes(d.gguf(), truncated);
  message = load_error(pkg);
  EXPECT_NE(message.find("has " + std::to_string(weights.size() - 1) +
                         " bytes; the package was saved against " + std::to_string(weights.size())),
            std::string::npos)
      << message;

  // One byte of a referenced tensor changed, and one of the header's metadata: same size.
  io::GgufFile f = io::GgufFile::open((d.path / "moved" / "weights.gguf").string());
  for (size_t at : {size_t(f.find_tensor("q8_0")->file_offset + 5), size_t(40)}) {
    auto modified = weights;
    modified[at] ^= std::byte{1};
    write_bytes(d.gguf(), modified);
    message = load_error(pkg);
    EXPECT_NE(message.find("weights.gguf): its XXH64 checksum differs"), std::string::npos)
        << message;
  }

  // A directory where the file was.
  fs::remove(d.gguf());
  fs::create_directories(d.gguf());
  EXPECT_NE(load_error(pkg).find("not a regular file"), std::string::npos);
  fs::remove(d.gguf());
  write_bytes(d.gguf(), weights);
  EXPECT_EQ(run_loaded(pkg), run(exe));
}

TEST(ReferencedWeights, HostileReferencesAreIoErrors) {
  Dir d("hostile");
  FileModel m(d.gguf());
  SaveOptions refer;
  refer.weight_files = {d.gguf()};
  std::string pkg = d.file("p.loompkg");
  save(m.compiled(), pkg, refer);
  const auto good = read_bytes(pkg);
  auto edit = [&](const std::function<void(package::PackageContents&)>& change) {
    auto c = package::decode_package(good, pkg);
    change(c);
    write_bytes(pkg, package::encode_package(c));
    return load_error(pkg);
  };
  const uint64_t size = fs::file_size(d.gguf());
  EXPECT_NE(edit([&](auto& c) {
              for (auto& [key, ref] : c.references) ref.offset = size - 4;
            }).find("reach past the end of 'weights.gguf'"),
            std::string::npos);
  EXPECT_NE(edit([](auto& c) {
              for (auto& [key, ref] : c.references) ref.offset = ~uint64_t(0);
            }).find("reach past the end"),
            std::string::npos);
  EXPECT_NE(edit([](auto& c) {
              for (auto& [key, ref] : c.references) ref.file = 5;
            }).find("file 5 of 1"),
            std::string::npos);
  // The table's size or checksum is not the file's.
  EXPECT_NE(edit([](auto& c) { c.files[0].size += 1; }).find("the package was saved against"),
            std::string::npos);
  EXPECT_NE(edit([](auto& c) { c.files[0].checksum ^= 1; }).find("checksum differs"),
            std::string::npos);
  EXPECT_NE(edit([](auto& c) {
              c.files[0].path = "/no/such/dir/w.gguf";
            }).find("'/no/such/dir/w.gguf' cannot be read"),
            std::string::npos);
  EXPECT_NE(edit([](auto& c) { c.files[0].path = ""; }).find("empty path"), std::string::npos);
  // A reference that lands on other bytes of the right size is caught by the graph's own
  // checks only when shapes disagree; here the f16 constant reads the f32 tensor's first
  // 8 bytes, which loads (the file is the one saved) but gives other values.
  auto c = package::decode_package(good, pkg);
  io::GgufFile f = io::GgufFile::open(d.gguf());
  for (auto& [key, ref] : c.references)
    if (ref.offset == f.find_tensor("f16")->file_offset)
      ref.offset = f.find_tensor("f32")->file_offset;
  write_bytes(pkg, package::encode_package(c));
  EXPECT_NE(run_loaded(pkg)[1], (std::vector<float>{1, -2, 0.5f, 4}));
}

TEST(ReferencedWeights, Version1PackagesStillLoad) {
  Dir d("v1");
  FileModel m(d.gguf());
  Executable exe = m.compiled();
  std::string pkg = d.file("v2.loompkg");
  save(exe, pkg);  // no weight files: every weight embedded
  auto v2 = read_bytes(pkg);
  auto c = package::decode_package(v2, pkg);
  c.format_version = 1;
  auto v1 = package::encode_package(c);
  // Version 1 is version 2 less the file table (an empty one is its u32 count) and with 1 in
  // the header.
  ASSERT_EQ(v1.size() + 4, v2.size());
  EXPECT_EQ(uint8_t(v1[8]), 1);
  write_bytes(d.file("v1.loompkg"), v1);
  Executable old = load(d.file("v1.loompkg"));
  EXPECT_EQ(run(old), run(exe));
  EXPECT_NE(old.package_note().find("from the package"), std::string::npos);

  // A version 1 package cannot hold a reference: the tag is refused there.
  SaveOptions refer;
  refer.weight_files = {d.gguf()};
  save(exe, pkg, refer);
  auto referenced = package::decode_package(read_bytes(pkg), pkg);
  referenced.format_version = 1;
  EXPECT_EQ(testing::error_kind([&] { package::encode_package(referenced); }), ErrorKind::internal);
  // Written by hand: the v2 body with its table cut out, and the header says 1.
  auto bytes = read_bytes(pkg);
  // (the table sits after three strings: loom version, device, device identity)
  size_t at = package::kHeaderBytes;
  for (int s = 0; s < 3; ++s) {
    uint32_t n;
    std::memcpy(&n, bytes.data() + at, 4);
    at += 4 + n;
  }
  uint32_t files;
  std::memcpy(&files, bytes.data() + at, 4);
  ASSERT_EQ(files, 1u);
  uint32_t path_bytes;
  std::memcpy(&path_bytes, bytes.data() + at + 4, 4);
  bytes.erase(bytes.begin() + ptrdiff_t(at),
              bytes.begin() + ptrdiff_t(at + 4 + 4 + path_bytes + 16));
  bytes[8] = std::byte{1};
  std::span<const std::byte> body(bytes.data() + package::kHeaderBytes,
                                  bytes.size() - package::kHeaderBytes);
  uint64_t body_size = body.size(), sum = package::fnv1a64(body);
  std::memcpy(bytes.data() + 16, &body_size, 8);
  std::memcpy(bytes.data() + 24, &sum, 8);
  write_bytes(pkg, bytes);
  EXPECT_NE(load_error(pkg).find("a referenced tensor in a version 1 package"), std::string::npos);
}

}  // namespace loom
