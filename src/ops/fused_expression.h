// The expression a `fused` node evaluates per element: a straight-line program over the
// node's inputs (read with numpy broadcasting), scalar literals and earlier results, each
// step one elementwise op with the semantics of that op's own kernels (f16 and bf16 results
// rounded after every step, as the unfused kernels round when they store). The
// fuse_elementwise pass writes it, the CPU kernel interprets it per block of elements, and
// the CUDA kernel is generated from it.
//
// Its text form is the node's "expression" attribute, so the dump shows it and a program
// can be written to a file:
//   t0:f32 = add(x0, x1); t1:f32 = mul(t0, 0.5:f32); t2:f16 = cast(t1); return t2, t0
// xK is the node's input K, tN the result of step N, "value:dtype" a literal.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "loom/dtype.h"

namespace loom::ops {

// The ops a fused expression may hold, with the registry's names.
enum class FusedOp : uint8_t {
  add,
  sub,
  mul,
  div,
  pow,
  maximum,
  minimum,  // arithmetic: one dtype in and out
  equal,
  less,
  greater,  // comparison: bool out
  where,    // condition, a, b
  neg,
  abs,
  relu,  // numeric unary
  exp,
  log,
  sqrt,
  rsqrt,
  sin,
  cos,
  tanh,
  sigmoid,  // float unary
  silu,
  gelu,
  gelu_tanh,
  cast,  // to the step's dtype
};

struct FusedOpInfo {
  FusedOp op;
  const char* name;
  int arity;
};
// The op called `name`; null when it is not one a fused expression holds.
const FusedOpInfo* find_fused_op(const std::string& name);
const FusedOpInfo& fused_op_info(FusedOp op);

struct FusedOperand {
  enum class Kind : uint8_t { input, step, literal };
  Kind kind = Kind::input;
  int index = 0;             // input or step number
  DType dtype = DType::f32;  // the literal's dtype (inputs and steps: see FusedExpression)
  double real = 0;           // a float or bool literal's value
  int64_t integer = 0;       // an integer literal's value
};

struct FusedStep {
  FusedOp op = FusedOp::add;
  DType dtype = DType::f32;  // the result's dtype
  std::vector<FusedOperand> args;
};

struct FusedExpression {
  std::vector<FusedStep> steps;
  std::vector<int> outputs;  // step numbers, one per output of the node
  int num_inputs = 0;        // 1 + the largest input number used

  // The text form above.
  std::string str() const;
  // Parses the text form; throws loom::Error(value) naming what is wrong.
  static FusedExpression parse(const std::string& text);
  // Checks every step's operands against the op and `input_dtypes` (one per node input):
  // known ops, arity, steps used only after they are defined, dtypes the op takes and gives.
  // Throws loom::Error(dtype) or (value).
  void check(const std::vector<DType>& input_dtypes) const;
  // The dtype an operand has, given the node's input dtypes.
  DType operand_dtype(const FusedOperand& a, const std::vector<DType>& input_dtypes) const;
};

}  // namespace loom::ops
