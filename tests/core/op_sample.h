// Builds one small node of any op from its schema, for tests that walk every op: value
// inputs [4, 4] of a chosen dtype, index inputs of a few small shapes, required attributes
// with plain values. A few ops relate their inputs' shapes in ways a schema does not state
// (attention's and quantize_kv's [B, H, S, D] operands, the byte width of quantized rows);
// `kExamples` gives those the shapes and attributes to start from.
#pragma once

#include <map>
#include <optional>

#include "ir/op_registry.h"
#include "test_util.h"

namespace loom::testing {

struct OpSample {
  Graph graph;
  std::vector<Tensor> declared;  // one per declared input (undefined when absent)
  std::vector<Tensor> outputs;
  Feeds feeds;
};

inline bool is_index_input(const InputSpec& spec) {
  return spec.dtypes == std::vector<DType>{DType::i32, DType::i64};
}

// The dtypes an op's value inputs may take (its first input's set; every dtype when any).
inline std::vector<DType> value_dtypes(const ir::OpDef& def) {
  for (const auto& in : def.inputs) {
    if (is_index_input(in)) continue;
    if (!in.dtypes.empty()) return in.dtypes;
    std::vector<DType> all;
    for (int d = 0; d < kDTypeCount; ++d) all.push_back(DType(d));
    return all;
  }
  return {DType::f32};
}

inline AttrValue plain_value(const AttrSpec& spec, DType dtype) {
  switch (spec.type) {
    case AttrType::integer:
      return int64_t(0);
    case AttrType::real:
      return 4.0;
    case AttrType::boolean:
      return false;
    case AttrType::string:
      return std::string();
    case AttrType::dtype:
      return dtype;
    case AttrType::int_list:
      if (spec.name == "perm") return std::vector<int64_t>{1, 0};
      if (spec.name == "stops" || spec.name == "sizes") return std::vector<int64_t>{2};
      return std::vector<int64_t>{0};
    case AttrType::float_list:
      return std::vector<double>{1.0};
    case AttrType::shape:
      return Shape{4, 4};
    default:
      return TensorData::zeros(dtype, {4, 4});
  }
}

inline TensorData sample_data(DType dtype, const Extents& shape, bool index) {
  if (index) return random_tensor(dtype, shape, 0, 2);
  if (is_packed(dtype) || dtype == DType::c64) return TensorData::zeros(dtype, shape);
  return random_tensor(dtype, shape, -2, 2);
}

struct OpExample {
  std::vector<Extents> shapes;  // per declared input, in order
  Attributes attrs;
};

// Value-input shapes and attributes for ops whose inputs are related (see the top).
inline const OpExample* example_for(const std::string& op) {
  static const std::map<std::string, OpExample> examples{
      {"scaled_dot_product_attention",
       {{{1, 2, 3, 8}, {1, 2, 5, 8}, {1, 2, 5, 8}, {1, 2, 3, 5}, {1}}, {}}},
      {"quantize_kv", {{{1, 2, 3, 8}}, {}}},
      // One Q8_0 block (34 bytes) per row of 32 elements.
      {"dequantize", {{{4, 34}}, {{"format", std::string("Q8_0")}, {"k", int64_t(32)}}}},
      {"quantized_matmul", {{{3, 32}, {4, 34}}, {{"format", std::string("Q8_0")}}}},
      {"frames", {{{4, 4}}, {{"frame_length", int64_t(2)}, {"hop", int64_t(1)}}}},
      {"overlap_add", {{{4, 4}}, {{"hop", int64_t(1)}}}},
  };
  auto it = examples.find(op);
  return it == examples.end() ? nullptr : &it->second;
}

// A node of `def` with value inputs of `dtype`, or nothing when no variant builds; `error`
// receives the last refusal. `with_optional`: optional inputs are given too.
inline std::optional<OpSample> sample_op(const ir::OpDef& def, DType dtype, bool with_optional,
                                         std::string* error = nullptr) {
  const OpExample* example = example_for(def.name);
  for (const Extents& index_shape : {Extents{1}, Extents{2}, Extents{}}) {
    for (bool extra : {false, true}) {
      OpSample s;
      std::vector<Tensor> inputs;
      for (size_t k = 0; k < def.inputs.size(); ++k) {
        const InputSpec& spec = def.inputs[k];
        bool index = is_index_input(spec);
        DType d = spec.dtypes.empty() || std::count(spec.dtypes.begin(), spec.dtypes.end(), dtype)
                      ? dtype
                      : spec.dtypes.front();
        Extents shape = index ? index_shape : (spec.optional ? Extents{4} : Extents{4, 4});
        if (example && k < example->shapes.size() && !index) shape = example->shapes[k];
        if (spec.optional && !with_optional) {
          s.declared.emplace_back();
          inputs.emplace_back();
          continue;
        }
        for (int copy = 0; copy < (spec.variadic ? 2 : 1); ++copy) {
          std::string name = spec.name + std::to_string(copy);
          Tensor t = s.graph.placeholder(name, to_shape(shape), d);
          s.feeds[name] = sample_data(d, shape, index);
          if (copy == 0) s.declared.push_back(t);
          inputs.push_back(t);
        }
      }
      Attributes attrs = example ? example->attrs : Attributes{};
      for (const AttrSpec& spec : def.attrs) {
        if (attrs.has(spec.name)) continue;
        if (spec.required) attrs.set(spec.name, plain_value(spec, dtype));
        if (extra && !spec.required && !spec.default_value && spec.type == AttrType::integer)
          attrs.set(spec.name, int64_t(2));
      }
      try {
        s.outputs = s.graph.add_node(def.name, inputs, attrs);
        return s;
      } catch (const Error& e) {
        if (error) *error = e.what();
      }
    }
  }
  return std::nullopt;
}

}  // namespace loom::testing
