// Encoding and decoding of packages (docs/package-format.md). Little-endian fixed-width
// integers, strings as u32 length + bytes, lists as u32 count + items. The decoder checks
// every count against the bytes left before it allocates or loops, every reference against
// what it refers to, and every size against overflow, so work and memory stay linear in the
// file and a hostile file gets a loom::Error(io), never a crash.
#include "package/package_format.h"

#include <cmath>
#include <cstring>
#include <limits>
#include <set>
#include <tuple>

#include "io/byte_reader.h"
#include "loom/error.h"
#include "package/package_files.h"

namespace loom::package {

uint64_t fnv1a64(std::span<const std::byte> bytes) {
  // FNV-1a over little-endian 64-bit words (then the tail bytes one by one): a package is
  // mostly weights, and a byte at a time costs about a second per GB.
  uint64_t h = 14695981039346656037ull;
  size_t i = 0;
  for (; i + 8 <= bytes.size(); i += 8) {
    uint64_t word;
    std::memcpy(&word, bytes.data() + i, 8);
    h ^= word;
    h *= 1099511628211ull;
  }
  for (; i < bytes.size(); ++i) {
    h ^= uint64_t(bytes[i]);
    h *= 1099511628211ull;
  }
  return h;
}

namespace {

enum AttrTag : uint8_t {
  kInt = 0,
  kFloat = 1,
  kBool = 2,
  kString = 3,
  kIntList = 4,
  kDType = 5,
  kShape = 6,
  kTensor = 7,
  kFloatList = 8,
  kRecord = 9,
  kTensorInFile = 10,  // version 2: a tensor whose bytes are in a referenced file
};

// Elements per shape and per tensor are capped as Loom caps them elsewhere (shape.cpp).
constexpr int64_t kMaxElements = int64_t(1) << 56;
constexpr uint32_t kMaxRank = 64;
constexpr uint32_t kFlagGraphOnly = 1;

class Writer {
 public:
  explicit Writer(const std::map<TensorKey, FileRef>* references = nullptr)
      : references_(references) {}
  template <class T>
  void put(T value) {
    static_assert(std::is_trivially_copyable_v<T>);
    const auto* p = reinterpret_cast<const std::byte*>(&value);
    out.insert(out.end(), p, p + sizeof(T));
  }
  void bytes(const void* data, size_t n) {
    const auto* p = static_cast<const std::byte*>(data);
    out.insert(out.end(), p, p + n);
  }
  void str(const std::string& s) {
    put<uint32_t>(uint32_t(s.size()));
    bytes(s.data(), s.size());
  }
  void shape(const Shape& shape) {
    put<uint32_t>(uint32_t(shape.size()));
    for (const auto& d : shape) {
      put<uint8_t>(d.is_static() ? 0 : 1);
      if (d.is_static())
        put<int64_t>(d.value());
      else
        str(d.symbol());
    }
  }
  // A tensor attribute: its bytes embedded, or where they are in a referenced file.
  void tensor(const TensorData& t) {
    TensorData host = t.defined() ? t.to_host().contiguous() : t;
    if (host.defined() && references_) {
      auto ref = references_->find(tensor_key(host));
      if (ref != references_->end()) {
        put<uint8_t>(kTensorInFile);
        header(host);
        put<uint32_t>(ref->second.file);
        put<uint64_t>(ref->second.offset);
        return;
      }
    }
    put<uint8_t>(kTensor);
    put<uint8_t>(host.defined() ? 1 : 0);
    if (!host.defined()) return;
    header(host);
    bytes(host.data(), host.nbytes());
  }
  void header(const TensorData& host) {
    str(dtype_name(host.dtype()));
    put<uint32_t>(uint32_t(host.rank()));
    for (int64_t e : host.shape()) put<int64_t>(e);
    put<uint64_t>(host.nbytes());
  }
  void attrs(const Attributes& attributes);
  void value(const AttrValue& v) {
    std::visit(
        [&](const auto& x) {
          using T = std::decay_t<decltype(x)>;
          if constexpr (std::is_same_v<T, int64_t>) {
            put<uint8_t>(kInt);
            put<int64_t>(x);
          } else if constexpr (std::is_same_v<T, double>) {
            put<uint8_t>(kFloat);
            put<double>(x);
          } else if constexpr (std::is_same_v<T, bool>) {
            put<uint8_t>(kBool);
            put<uint8_t>(x ? 1 : 0);
          } else if constexpr (std::is_same_v<T, std::string>) {
            put<uint8_t>(kString);
            str(x);
          } else if constexpr (std::is_same_v<T, std::vector<int64_t>>) {
            put<uint8_t>(kIntList);
            put<uint32_t>(uint32_t(x.size()));
            for (int64_t e : x) put<int64_t>(e);
          } else if constexpr (std::is_same_v<T, DType>) {
            put<uint8_t>(kDType);
            str(dtype_name(x));
          } else if constexpr (std::is_same_v<T, Shape>) {
            put<uint8_t>(kShape);
            shape(x);
          } else if constexpr (std::is_same_v<T, TensorData>) {
            tensor(x);
          } else if constexpr (std::is_same_v<T, std::vector<double>>) {
            put<uint8_t>(kFloatList);
            put<uint32_t>(uint32_t(x.size()));
            for (double e : x) put<double>(e);
          } else {
            static_assert(std::is_same_v<T, Record>);
            put<uint8_t>(kRecord);
            str(x.type());
            attrs(x.fields());
          }
        },
        v);
  }

  std::vector<std::byte> out;

 private:
  const std::map<TensorKey, FileRef>* references_;
};

void Writer::attrs(const Attributes& attributes) {
  put<uint32_t>(uint32_t(attributes.items().size()));
  for (const auto& [name, v] : attributes.items()) {
    str(name);
    value(v);
  }
}

class Reader {
 public:
  Reader(std::span<const std::byte> bytes, const std::string& label) : r_(bytes, label) {}

  // Version 2: the referenced files, mapped and checked, and the references read so far.
  uint32_t version = kFormatVersion;
  std::vector<PackedFile> files;
  std::vector<std::shared_ptr<const io::MappedFile>> mapped;
  std::map<TensorKey, FileRef>* references = nullptr;

  template <class T>
  T get(std::string_view what) {
    return r_.read<T>(what);
  }
  std::string str(std::string_view what) {
    uint32_t n = r_.read<uint32_t>(what);
    auto b = r_.read_bytes(n, what);
    return std::string(reinterpret_cast<const char*>(b.data()), b.size());
  }
  // A count of items of at least `min_item_bytes` each: there must be room for them all.
  uint32_t count(std::string_view what, size_t min_item_bytes) {
    size_t at = r_.pos();
    uint32_t n = r_.read<uint32_t>(what);
    if (uint64_t(n) * min_item_bytes > r_.remaining())
      bad(what, std::to_string(n) + " items (at offset " + std::to_string(at) +
                    ") cannot fit in the " + std::to_string(r_.remaining()) + " bytes left");
    return n;
  }
  DType dtype(std::string_view what) {
    std::string name = str(what);
    for (int i = 0; i < kDTypeCount; ++i)
      if (name == dtype_name(DType(i))) return DType(i);
    bad(what, "unknown dtype '" + printable(name) + "'");
  }
  // Types' dims are sizes (>= 0); an attribute's may be -1 (reshape's inferred dim), which
  // the op's schema and inference judge.
  Shape shape(std::string_view what, bool sizes) {
    uint32_t rank = count(what, 9);
    if (rank > kMaxRank)
      bad(what, "rank " + std::to_string(rank) + " is over " + std::to_string(kMaxRank));
    Shape shape;
    for (uint32_t i = 0; i < rank; ++i) {
      uint8_t kind = get<uint8_t>(what);
      if (kind == 0) {
        int64_t v = get<int64_t>(what);
        if (sizes && v < 0) bad(what, "negative dim " + std::to_string(v));
        shape.emplace_back(v);
      } else if (kind == 1) {
        std::string symbol = str(what);
        if (symbol.empty()) bad(what, "empty symbol name");
        shape.emplace_back(symbol);
      } else {
        bad(what, "dim kind " + std::to_string(kind) + " (0: number, 1: symbol)");
      }
    }
    return shape;
  }
  TensorData tensor(std::string_view what) {
    uint8_t defined = get<uint8_t>(what);
    if (defined > 1) bad(what, "defined flag " + std::to_string(defined));
    if (!defined) return {};
    auto [dtype, shape, nbytes] = tensor_header(what);
    auto data = r_.read_bytes(nbytes, what);  // checked before the allocation below
    return TensorData::from_pointer(data.data(), dtype, shape);
  }
  // A tensor in a referenced file: its bytes are the file's, read in place where they are
  // aligned as the CPU kernels want them (as a model's weights are), else copied.
  TensorData tensor_in_file(std::string_view what) {
    if (version < 2) bad(what, "a referenced tensor in a version 1 package");
    auto [dtype, shape, nbytes] = tensor_header(what);
    FileRef ref{get<uint32_t>(what), get<uint64_t>(what)};
    if (ref.file >= files.size())
      bad(what, "file " + std::to_string(ref.file) + " of " + std::to_string(files.size()));
    const PackedFile& file = files[ref.file];
    if (ref.offset > file.size || nbytes > file.size - ref.offset)
      bad(what, std::to_string(nbytes) + " bytes at " + std::to_string(ref.offset) +
                    " reach past the end of '" + printable(file.path) + "' (" +
                    std::to_string(file.size) + " bytes)");
    const auto& owner = mapped[ref.file];
    const std::byte* at = owner->bytes().data() + ref.offset;
    TensorData t;
    if (reinterpret_cast<uintptr_t>(at) % 32 == 0) {
      // Never written: a VariableStore copies a variable before its first write.
      Strides strides = contiguous_strides(shape);
      t = TensorData::wrap(const_cast<std::byte*>(at), dtype, shape, std::move(strides),
                           Device::cpu(), std::const_pointer_cast<io::MappedFile>(owner));
    } else {
      t = TensorData::from_pointer(at, dtype, shape);
    }
    if (references) (*references)[tensor_key(t)] = ref;
    return t;
  }
  std::tuple<DType, Extents, uint64_t> tensor_header(std::string_view what) {
    DType dtype = this->dtype(what);
    uint32_t rank = count(what, 8);
    if (rank > kMaxRank)
      bad(what, "rank " + std::to_string(rank) + " is over " + std::to_string(kMaxRank));
    Extents shape;
    int64_t elements = 1;
    for (uint32_t i = 0; i < rank; ++i) {
      int64_t e = get<int64_t>(what);
      if (e < 0) bad(what, "negative extent " + std::to_string(e));
      if (e != 0 && elements > kMaxElements / e) bad(what, "too many elements");
      elements *= e;
      shape.push_back(e);
    }
    uint64_t nbytes = get<uint64_t>(what);
    if (nbytes != storage_bytes(dtype, elements))
      bad(what, std::to_string(nbytes) + " bytes for " + dtype_name(dtype) + to_string(shape) +
                    ", which takes " + std::to_string(storage_bytes(dtype, elements)));
    return {dtype, std::move(shape), nbytes};
  }
  Attributes attrs(std::string_view what, int depth) {
    if (depth > kMaxRecordDepth)
      bad(what, "records nested deeper than " + std::to_string(kMaxRecordDepth));
    uint32_t n = count(what, 5);
    Attributes out;
    for (uint32_t i = 0; i < n; ++i) {
      std::string name = str("attribute name");
      if (out.has(name)) bad(what, "attribute '" + printable(name) + "' given twice");
      out.set(name, value(name, depth));
    }
    return out;
  }
  AttrValue value(const std::string& name, int depth) {
    std::string what = "attribute '" + printable(name) + "'";
    uint8_t tag = get<uint8_t>(what);
    switch (tag) {
      case kInt:
        return get<int64_t>(what);
      case kFloat:
        return get<double>(what);
      case kBool: {
        uint8_t b = get<uint8_t>(what);
        if (b > 1) bad(what, "bool byte " + std::to_string(b));
        return b == 1;
      }
      case kString:
        return str(what);
      case kIntList: {
        uint32_t n = count(what, 8);
        std::vector<int64_t> v(n);
        for (auto& e : v) e = get<int64_t>(what);
        return v;
      }
      case kDType:
        return dtype(what);
      case kShape:
        return shape(what, false);
      case kTensor:
        return tensor(what);
      case kTensorInFile:
        return tensor_in_file(what);
      case kFloatList: {
        uint32_t n = count(what, 8);
        std::vector<double> v(n);
        for (auto& e : v) e = get<double>(what);
        return v;
      }
      case kRecord: {
        std::string type = str(what);
        return Record(type, attrs(what, depth + 1));
      }
      default:
        bad(what, "unknown value tag " + std::to_string(tag));
    }
  }

  size_t remaining() const { return r_.remaining(); }
  size_t pos() const { return r_.pos(); }
  [[noreturn]] void bad(std::string_view what, const std::string& problem) const {
    fail(ErrorKind::io, r_.path() + ": bad package: " + std::string(what) + ": " + problem);
  }
  // Names from the file go into messages: keep them short and printable.
  static std::string printable(const std::string& s) {
    std::string out;
    for (char c : s.substr(0, 64)) out += (c >= 32 && c < 127) ? c : '?';
    return s.size() > 64 ? out + "..." : out;
  }

 private:
  io::ByteReader r_;
};

}  // namespace

std::vector<std::byte> encode_package(const PackageContents& c) {
  if (c.format_version < 2 && (!c.files.empty() || !c.references.empty()))
    fail(ErrorKind::internal, "encode_package: a version 1 package references no files");
  Writer w(&c.references);
  w.str(c.loom_version);
  w.str(c.device);
  w.str(c.device_identity);
  if (c.format_version >= 2) {
    w.put<uint32_t>(uint32_t(c.files.size()));
    for (const auto& f : c.files) {
      w.str(f.path);
      w.put<uint64_t>(f.size);
      w.put<uint64_t>(f.checksum);
    }
  }
  w.put<uint32_t>(uint32_t(c.symbols.size()));
  for (const auto& s : c.symbols) w.str(s);
  w.put<uint32_t>(uint32_t(c.nodes.size()));
  for (const auto& n : c.nodes) {
    w.put<int32_t>(n.id);
    w.str(n.op);
    w.put<uint32_t>(n.op_version);
    w.str(n.name);
    w.put<uint32_t>(uint32_t(n.inputs.size()));
    for (const auto& in : n.inputs) {
      w.put<uint32_t>(in.node);
      w.put<uint32_t>(in.output);
    }
    w.put<uint32_t>(uint32_t(n.input_slots.size()));
    for (int32_t s : n.input_slots) w.put<int32_t>(s);
    w.attrs(n.attrs);
    w.put<uint32_t>(uint32_t(n.outputs.size()));
    for (const auto& t : n.outputs) {
      w.str(dtype_name(t.dtype));
      w.shape(t.shape);
    }
  }
  w.put<uint32_t>(uint32_t(c.outputs.size()));
  for (const auto& o : c.outputs) {
    w.put<uint32_t>(o.node);
    w.put<uint32_t>(o.output);
  }
  w.put<uint32_t>(uint32_t(c.plans.size()));
  for (const auto& p : c.plans) {
    w.put<uint32_t>(uint32_t(p.key.size()));
    for (int64_t k : p.key) w.put<int64_t>(k);
    w.put<uint64_t>(p.arena_bytes);
    w.put<uint32_t>(uint32_t(p.steps.size()));
    for (const auto& s : p.steps) {
      w.put<int32_t>(s.node_id);
      w.str(s.kernel);
      w.str(s.tactic);
      w.put<double>(s.ms);
      w.put<int32_t>(s.tried);
    }
    w.put<uint32_t>(uint32_t(p.buffers.size()));
    for (const auto& b : p.buffers) {
      w.put<int32_t>(b.node_id);
      w.put<int32_t>(b.output);
      w.put<uint64_t>(b.offset);
      w.put<uint64_t>(b.bytes);
      w.put<int32_t>(b.first);
      w.put<int32_t>(b.last);
    }
  }

  Writer file;
  file.bytes(kMagic, sizeof kMagic);
  file.put<uint32_t>(c.format_version);
  file.put<uint32_t>(c.graph_only ? kFlagGraphOnly : 0);
  file.put<uint64_t>(w.out.size());
  file.put<uint64_t>(fnv1a64(w.out));
  file.out.insert(file.out.end(), w.out.begin(), w.out.end());
  return std::move(file.out);
}

namespace {

// The magic, the format version and the flags (the reader is left after them).
void read_header(Reader& r, std::span<const std::byte> bytes, const std::string& label,
                 PackageContents& c) {
  if (bytes.size() < sizeof kMagic || std::memcmp(bytes.data(), kMagic, sizeof kMagic) != 0)
    fail(ErrorKind::io, label + ": not a Loom package (it does not start with LOOMPKG)");
  r.get<uint64_t>("magic");
  c.format_version = r.get<uint32_t>("format version");
  if (c.format_version < kOldestFormatVersion || c.format_version > kFormatVersion)
    fail(ErrorKind::io, label + ": package format version " + std::to_string(c.format_version) +
                            "; this Loom reads versions " + std::to_string(kOldestFormatVersion) +
                            " to " + std::to_string(kFormatVersion));
  uint32_t flags = r.get<uint32_t>("flags");
  if (flags & ~kFlagGraphOnly) r.bad("flags", "unknown flags " + std::to_string(flags));
  c.graph_only = (flags & kFlagGraphOnly) != 0;
}

}  // namespace

bool header_says_graph(std::span<const std::byte> bytes, const std::string& label) {
  Reader r(bytes, label);
  PackageContents c;
  read_header(r, bytes, label, c);
  return c.graph_only;
}

namespace {

// Everything, or (`table_only`) up to the table of referenced files without opening them.
PackageContents decode(std::span<const std::byte> bytes, const std::string& label,
                       bool table_only) {
  Reader r(bytes, label);
  PackageContents c;
  read_header(r, bytes, label, c);
  r.version = c.format_version;
  r.references = &c.references;
  uint64_t body_bytes = r.get<uint64_t>("body size");
  uint64_t checksum = r.get<uint64_t>("checksum");
  if (body_bytes != r.remaining())
    r.bad("body size", "the header says " + std::to_string(body_bytes) + " bytes, the file has " +
                           std::to_string(r.remaining()) + " after the header (truncated?)");
  auto body = bytes.subspan(kHeaderBytes);
  if (fnv1a64(body) != checksum)
    r.bad("checksum", "the body's FNV-1a checksum does not match the header (corrupted)");

  c.loom_version = r.str("loom version");
  c.device = r.str("device");
  c.device_identity = r.str("device identity");
  if (c.format_version >= 2) {
    // A file takes at least 20 bytes (the path's length, size, checksum).
    uint32_t files = r.count("files", 20);
    for (uint32_t i = 0; i < files; ++i) {
      PackedFile f;
      f.path = r.str("file path");
      if (f.path.empty() || f.path.find('\0') != std::string::npos)
        r.bad("files", "file " + std::to_string(i) + " has an empty path or one with a NUL");
      f.size = r.get<uint64_t>("file size");
      f.checksum = r.get<uint64_t>("file checksum");
      c.files.push_back(f);
    }
    if (table_only) return c;
    // Checked before any node refers to them: a missing or changed file fails here.
    for (const auto& f : c.files) r.mapped.push_back(open_file(f, label));
    r.files = c.files;
  }
  uint32_t symbols = r.count("symbols", 4);
  for (uint32_t i = 0; i < symbols; ++i) {
    c.symbols.push_back(r.str("symbol"));
    if (c.symbols.back().empty()) r.bad("symbols", "empty symbol name");
  }

  // A node takes at least 29 bytes (id, three empty strings' lengths, version, four counts).
  uint32_t nodes = r.count("node count", 29);
  std::set<int32_t> ids;
  for (uint32_t i = 0; i < nodes; ++i) {
    PackedNode n;
    std::string what = "node " + std::to_string(i);
    n.id = r.get<int32_t>(what);
    if (n.id < 0 || !ids.insert(n.id).second)
      r.bad(what, "id " + std::to_string(n.id) + " is negative or used twice");
    n.op = r.str(what + " op");
    n.op_version = r.get<uint32_t>(what);
    n.name = r.str(what + " name");
    uint32_t inputs = r.count(what + " inputs", 8);
    for (uint32_t k = 0; k < inputs; ++k) {
      NodeRef ref{r.get<uint32_t>(what), r.get<uint32_t>(what)};
      // Nodes are in topological order: an input is an output of an earlier node.
      if (ref.node >= i || ref.output >= c.nodes[ref.node].outputs.size())
        r.bad(what, "input " + std::to_string(k) + " refers to output " +
                        std::to_string(ref.output) + " of node " + std::to_string(ref.node) +
                        ", which is not an earlier node's output");
      n.inputs.push_back(ref);
    }
    uint32_t slots = r.count(what + " input slots", 4);
    if (slots != 0 && slots != inputs)
      r.bad(what, std::to_string(slots) + " input slots for " + std::to_string(inputs) + " inputs");
    for (uint32_t k = 0; k < slots; ++k) n.input_slots.push_back(r.get<int32_t>(what));
    n.attrs = r.attrs(what + " attributes", 0);
    uint32_t outputs = r.count(what + " outputs", 8);
    for (uint32_t k = 0; k < outputs; ++k) {
      ir::TensorType t;
      t.dtype = r.dtype(what + " output dtype");
      t.shape = r.shape(what + " output shape", true);
      n.outputs.push_back(std::move(t));
    }
    c.nodes.push_back(std::move(n));
  }
  uint32_t outputs = r.count("outputs", 8);
  for (uint32_t k = 0; k < outputs; ++k) {
    NodeRef ref{r.get<uint32_t>("output"), r.get<uint32_t>("output")};
    if (ref.node >= c.nodes.size() || ref.output >= c.nodes[ref.node].outputs.size())
      r.bad("outputs", "output " + std::to_string(k) + " refers to no node output");
    c.outputs.push_back(ref);
  }

  uint32_t plans = r.count("plans", 20);
  for (uint32_t p = 0; p < plans; ++p) {
    PackedPlan plan;
    std::string what = "plan " + std::to_string(p);
    uint32_t keys = r.count(what + " binding", 8);
    if (keys != c.symbols.size())
      r.bad(what,
            std::to_string(keys) + " sizes for " + std::to_string(c.symbols.size()) + " symbols");
    for (uint32_t k = 0; k < keys; ++k) {
      plan.key.push_back(r.get<int64_t>(what));
      if (plan.key.back() < 0) r.bad(what, "negative size bound to a symbol");
    }
    plan.arena_bytes = r.get<uint64_t>(what);
    uint32_t steps = r.count(what + " steps", 24);
    for (uint32_t s = 0; s < steps; ++s) {
      PackedStep step;
      step.node_id = r.get<int32_t>(what);
      if (!ids.count(step.node_id))
        r.bad(what, "step " + std::to_string(s) + " names node id " + std::to_string(step.node_id) +
                        ", which is not in the graph");
      step.kernel = r.str(what + " kernel");
      step.tactic = r.str(what + " tactic");
      step.ms = r.get<double>(what);
      step.tried = r.get<int32_t>(what);
      plan.steps.push_back(std::move(step));
    }
    uint32_t buffers = r.count(what + " buffers", 32);
    for (uint32_t b = 0; b < buffers; ++b) {
      PackedBuffer buf;
      buf.node_id = r.get<int32_t>(what);
      buf.output = r.get<int32_t>(what);
      buf.offset = r.get<uint64_t>(what);
      buf.bytes = r.get<uint64_t>(what);
      buf.first = r.get<int32_t>(what);
      buf.last = r.get<int32_t>(what);
      if (!ids.count(buf.node_id) || buf.output < -3)
        r.bad(what, "buffer " + std::to_string(b) + " belongs to no node output");
      if (buf.offset > plan.arena_bytes || buf.bytes > plan.arena_bytes - buf.offset)
        r.bad(what, "buffer " + std::to_string(b) + " at " + std::to_string(buf.offset) + " (" +
                        std::to_string(buf.bytes) + " B) reaches past the arena's " +
                        std::to_string(plan.arena_bytes) + " B");
      if (buf.first > buf.last)
        r.bad(what, "buffer " + std::to_string(b) + " ends before it starts");
      plan.buffers.push_back(buf);
    }
    c.plans.push_back(std::move(plan));
  }
  if (c.graph_only && !c.plans.empty()) r.bad("plans", "a saved graph has no plans");
  if (r.remaining() != 0)
    r.bad("end", std::to_string(r.remaining()) + " bytes after the last plan");
  return c;
}

}  // namespace

PackageContents decode_package(std::span<const std::byte> bytes, const std::string& label) {
  return decode(bytes, label, false);
}

std::vector<PackedFile> read_file_table(std::span<const std::byte> bytes,
                                        const std::string& label) {
  return decode(bytes, label, true).files;
}

}  // namespace loom::package
