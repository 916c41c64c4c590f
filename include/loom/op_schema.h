// Op schemas: what each registered op declares once — named inputs, typed attributes with
// defaults and ranges, outputs, role, version and a one-line doc. Graph::add_node checks
// nodes against them; the op functions, the Python bindings and `loom ops` read them.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "loom/attributes.h"
#include "loom/dtype.h"

namespace loom {

// Defaults shared by the op functions of ops.h (as default arguments) and the op schemas,
// so that each is written once. Kernels never restate them: they read the node's attributes,
// which Graph::add_node has filled from the schema.
namespace op_defaults {
inline constexpr int64_t softmax_axis = -1;
inline constexpr double layer_norm_eps = 1e-5;
inline constexpr double rms_norm_eps = 1e-6;
inline constexpr int64_t argmax_axis = 0;
inline constexpr int64_t gather_axis = 0;
inline constexpr double arange_start = 0.0;
inline constexpr double arange_step = 1.0;
inline constexpr DType arange_dtype = DType::i64;
inline constexpr double rope_base = 10000.0;
inline constexpr bool rope_interleaved = false;
inline constexpr int64_t rope_dims = 0;
inline constexpr double rope_scale = 1.0;
}  // namespace op_defaults

enum class AttrType : uint8_t {
  integer,     // int64_t
  real,        // double (an int is taken too)
  boolean,     // bool
  string,      // std::string
  dtype,       // DType (a dtype name is taken too)
  int_list,    // std::vector<int64_t>
  float_list,  // std::vector<double> (ints are taken too)
  shape,       // Shape (an int list is taken too)
  tensor,      // TensorData
  record,      // Record of the spec's record type
};
const char* attr_type_name(AttrType type);

struct RecordSpec;

struct AttrSpec {
  std::string name{};
  AttrType type = AttrType::integer;
  // The value when the attribute is not given; none and !required: the attribute is optional
  // and stays absent.
  std::optional<AttrValue> default_value{};
  bool required = false;
  std::string doc{};
  // Inclusive bounds of an int or float (of each element, for lists).
  std::optional<double> min{}, max{};
  // A closed set of values (strings, ints, dtypes); empty: any value of the type.
  std::vector<AttrValue> allowed{};
  // The record type of a record attribute.
  std::shared_ptr<const RecordSpec> record{};

  // "eps: float = 1e-05 (>= 0)  small value added to the variance"
  std::string str() const;
};

// A named record type: each field is an attribute spec.
struct RecordSpec {
  std::string name{};
  std::string doc{};
  std::vector<AttrSpec> fields{};
};

struct InputSpec {
  std::string name{};
  std::string doc{};
  // Allowed dtypes; empty: any dtype.
  std::vector<DType> dtypes{};
  // Inputs naming the same type variable ("T") must share one dtype.
  std::string type_var{};
  // May be absent; named by its name, never by its position.
  bool optional = false;
  // One or more values (the last input only).
  bool variadic = false;

  std::string str() const;  // "weight?: T in {f32, f16, bf16}"
};

struct OutputSpec {
  std::string name{};
  std::string doc{};
  bool variadic = false;  // one output per piece (split)
};

struct OpSchema {
  std::string name{};
  std::string doc{};
  int version = 1;
  // compute, placeholder, constant, variable, read, assign, inplace_update
  std::string role{};
  // Made only by the compiler's passes; Graph::add_node refuses it.
  bool internal = false;
  std::vector<InputSpec> inputs{};
  std::vector<AttrSpec> attributes{};
  std::vector<OutputSpec> outputs{};
  // The op can be built from simpler ops (a backend without its kernel uses that).
  bool has_decomposition = false;

  const AttrSpec* attribute(const std::string& name) const;
  const InputSpec* input(const std::string& name) const;
  // Several lines: signature, doc, inputs, attributes, outputs.
  std::string str() const;
};

// Names of every registered op, sorted.
std::vector<std::string> op_names();
// The schema of an op; throws loom::Error(unsupported) for an unknown name.
const OpSchema& op_schema(const std::string& name);

}  // namespace loom
