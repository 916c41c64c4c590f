// Random attributes for the op fuzzer, chosen from the op's schema: mostly values of each
// declared type (small, often out of range), sometimes a value of another type, an unknown
// name, or a required attribute left out, so that the checks are fuzzed as well.
#pragma once

#include <random>

#include "ir/op_registry.h"
#include "loom/loom.h"

namespace loom::testing {

// A value of any attribute type.
inline AttrValue random_attr_value(std::mt19937& gen) {
  std::uniform_int_distribution<int> small(-4, 6);
  switch (gen() % 7) {
    case 0:
      return int64_t(small(gen));
    case 1:
      return double(small(gen)) * 0.5;
    case 2:
      return bool(gen() % 2);
    case 3: {
      std::vector<int64_t> v(gen() % 4);
      for (auto& x : v) x = small(gen);
      return v;
    }
    case 4:
      return DType(gen() % kDTypeCount);
    case 5: {
      Shape s;
      for (size_t i = gen() % 4; i > 0; --i)
        s.push_back(gen() % 5 == 0 ? Dim("n") : Dim(int64_t(small(gen))));
      return s;
    }
    default:
      return std::string("x");
  }
}

// A value of the spec's type (or, rarely, of any type).
inline AttrValue random_attr_for(const AttrSpec& spec, std::mt19937& gen) {
  std::uniform_int_distribution<int> small(-4, 6);
  if (gen() % 10 == 0) return random_attr_value(gen);
  switch (spec.type) {
    case AttrType::integer:
      return int64_t(small(gen));
    case AttrType::real:
      return double(small(gen)) * 0.5;
    case AttrType::boolean:
      return bool(gen() % 2);
    case AttrType::dtype:
      return DType(gen() % kDTypeCount);
    case AttrType::int_list: {
      std::vector<int64_t> v(gen() % 4);
      for (auto& x : v) x = small(gen);
      return v;
    }
    case AttrType::float_list: {
      std::vector<double> v(gen() % 4);
      for (auto& x : v) x = small(gen) * 0.5;
      return v;
    }
    case AttrType::shape: {
      Shape s;
      for (size_t i = gen() % 4; i > 0; --i)
        s.push_back(gen() % 5 == 0 ? Dim("n") : Dim(int64_t(small(gen))));
      return s;
    }
    default:
      return random_attr_value(gen);
  }
}

inline Attributes random_attributes(const ir::OpDef& def, std::mt19937& gen) {
  Attributes attrs;
  for (const AttrSpec& spec : def.attrs) {
    // Required ones are mostly given; the rest often keep their defaults.
    if (gen() % 10 < (spec.required ? 9u : 5u)) attrs.set(spec.name, random_attr_for(spec, gen));
  }
  if (gen() % 20 == 0) attrs.set("no_such_attribute", random_attr_value(gen));
  return attrs;
}

}  // namespace loom::testing
