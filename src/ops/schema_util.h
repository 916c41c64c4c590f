// Short forms for declaring op schemas (OpDef inputs, attributes, outputs).
#pragma once

#include <string>
#include <vector>

#include "ir/op_registry.h"
#include "loom/error.h"

namespace loom::ops {

// Dtype sets the kernels compute on.
inline const std::vector<DType> kFloatDTypes{DType::f32, DType::f16, DType::bf16};
// Byte-addressable floats and integers (packed i4/u4 and complex have their own ops).
inline const std::vector<DType> kNumericDTypes{DType::f32, DType::f16, DType::bf16, DType::i8,
                                               DType::u8,  DType::i32, DType::i64};
inline const std::vector<DType> kNumericOrBoolDTypes{DType::f32, DType::f16,    DType::bf16,
                                                     DType::i8,  DType::u8,     DType::i32,
                                                     DType::i64, DType::boolean};
inline const std::vector<DType> kIndexDTypes{DType::i32, DType::i64};
// Every dtype whose elements are whole bytes: what the data-movement kernels copy (packed
// i4/u4 move only as whole tensors, by reshape, read and assign).
inline const std::vector<DType> kByteDTypes{DType::f32, DType::f16,     DType::bf16,
                                            DType::i8,  DType::u8,      DType::i32,
                                            DType::i64, DType::boolean, DType::c64};

inline InputSpec input(std::string name, std::string doc, std::vector<DType> dtypes = {},
                       std::string type_var = "") {
  return {.name = std::move(name),
          .doc = std::move(doc),
          .dtypes = std::move(dtypes),
          .type_var = std::move(type_var)};
}

inline InputSpec optional_input(std::string name, std::string doc, std::vector<DType> dtypes = {},
                                std::string type_var = "") {
  InputSpec s = input(std::move(name), std::move(doc), std::move(dtypes), std::move(type_var));
  s.optional = true;
  return s;
}

inline InputSpec variadic_input(std::string name, std::string doc, std::vector<DType> dtypes = {},
                                std::string type_var = "") {
  InputSpec s = input(std::move(name), std::move(doc), std::move(dtypes), std::move(type_var));
  s.variadic = true;
  return s;
}

// An attribute with a default.
inline AttrSpec attr(std::string name, AttrType type, AttrValue default_value, std::string doc) {
  return {.name = std::move(name),
          .type = type,
          .default_value = std::move(default_value),
          .doc = std::move(doc)};
}

inline AttrSpec required_attr(std::string name, AttrType type, std::string doc) {
  return {.name = std::move(name), .type = type, .required = true, .doc = std::move(doc)};
}

// No default: absent unless given.
inline AttrSpec optional_attr(std::string name, AttrType type, std::string doc) {
  return {.name = std::move(name), .type = type, .doc = std::move(doc)};
}

inline AttrSpec at_least(AttrSpec spec, double min) {
  spec.min = min;
  return spec;
}

// Flags such as has_mask that say whether a named optional input is given: set from
// `present` (declared input `first_slot + i` for flags[i]); a flag set by hand must agree.
struct PresenceFlag {
  const char* flag;
  const char* input;
};

inline void set_presence_flags(const std::string& op, Attributes& attrs,
                               const std::vector<bool>& present, size_t first_slot,
                               const std::vector<PresenceFlag>& flags) {
  size_t slot = first_slot;
  for (const PresenceFlag& f : flags) {
    const bool given = present.size() > slot && present[slot];
    ++slot;
    if (attrs.has(f.flag) && attrs.get<bool>(f.flag) != given)
      fail(ErrorKind::value, op + ": " + f.flag + " is " +
                                 (given ? "false, but a " : "true, but no ") + f.input +
                                 " input is given");
    attrs.set(f.flag, given);
  }
}

// An op's check_attrs when its only cross-checks are presence flags (layer_norm's has_weight
// and has_bias, attention's has_mask and has_kv_len, ...).
inline ir::AttrCheckFn presence_flags(size_t first_slot, std::vector<PresenceFlag> flags) {
  return [first_slot, flags = std::move(flags)](const std::string& op, Attributes& attrs,
                                                const std::vector<bool>& present) {
    set_presence_flags(op, attrs, present, first_slot, flags);
  };
}

inline OutputSpec output(std::string name, std::string doc) {
  return {.name = std::move(name), .doc = std::move(doc)};
}

}  // namespace loom::ops
