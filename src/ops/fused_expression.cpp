#include "ops/fused_expression.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <limits>

#include "loom/error.h"

namespace loom::ops {

namespace {

constexpr FusedOpInfo kFusedOps[] = {
    {FusedOp::add, "add", 2},
    {FusedOp::sub, "sub", 2},
    {FusedOp::mul, "mul", 2},
    {FusedOp::div, "div", 2},
    {FusedOp::pow, "pow", 2},
    {FusedOp::maximum, "maximum", 2},
    {FusedOp::minimum, "minimum", 2},
    {FusedOp::equal, "equal", 2},
    {FusedOp::less, "less", 2},
    {FusedOp::greater, "greater", 2},
    {FusedOp::where, "where", 3},
    {FusedOp::neg, "neg", 1},
    {FusedOp::abs, "abs", 1},
    {FusedOp::relu, "relu", 1},
    {FusedOp::exp, "exp", 1},
    {FusedOp::log, "log", 1},
    {FusedOp::sqrt, "sqrt", 1},
    {FusedOp::rsqrt, "rsqrt", 1},
    {FusedOp::sin, "sin", 1},
    {FusedOp::cos, "cos", 1},
    {FusedOp::tanh, "tanh", 1},
    {FusedOp::sigmoid, "sigmoid", 1},
    {FusedOp::silu, "silu", 1},
    {FusedOp::gelu, "gelu", 1},
    {FusedOp::gelu_tanh, "gelu_tanh", 1},
    {FusedOp::cast, "cast", 1},
};

[[noreturn]] void bad(const std::string& text, const std::string& why) {
  fail(ErrorKind::value, "fused expression: " + why + " in \"" + text + "\"");
}

std::string trim(const std::string& s) {
  size_t b = s.find_first_not_of(' '), e = s.find_last_not_of(' ');
  return b == std::string::npos ? "" : s.substr(b, e - b + 1);
}

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> parts;
  size_t start = 0;
  for (size_t i = 0; i <= s.size(); ++i)
    if (i == s.size() || s[i] == sep) {
      parts.push_back(trim(s.substr(start, i - start)));
      start = i + 1;
    }
  return parts;
}

// A whole non-negative decimal number after `prefix` ("t12" -> 12); -1 otherwise.
int number_after(const std::string& s, char prefix) {
  if (s.size() < 2 || s[0] != prefix || s.size() > 10) return -1;
  int v = 0;
  for (size_t i = 1; i < s.size(); ++i) {
    if (s[i] < '0' || s[i] > '9') return -1;
    v = v * 10 + (s[i] - '0');
  }
  return v;
}

std::string literal_str(const FusedOperand& a) {
  if (a.dtype == DType::boolean) return std::string(a.real != 0 ? "true" : "false") + ":bool";
  std::string value;
  if (is_float(a.dtype)) {
    if (std::isnan(a.real)) {
      value = "nan";
    } else if (std::isinf(a.real)) {
      value = a.real > 0 ? "inf" : "-inf";
    } else {
      // 9 significant digits give every float back exactly (f16 and bf16 values are floats).
      char buf[40];
      std::snprintf(buf, sizeof buf, "%.9g", a.real);
      value = buf;
    }
  } else {
    value = std::to_string(a.integer);
  }
  return value + ":" + dtype_name(a.dtype);
}

FusedOperand parse_operand(const std::string& s, const std::string& text) {
  FusedOperand a;
  if (int k = number_after(s, 'x'); k >= 0) {
    a.kind = FusedOperand::Kind::input;
    a.index = k;
    return a;
  }
  if (int k = number_after(s, 't'); k >= 0) {
    a.kind = FusedOperand::Kind::step;
    a.index = k;
    return a;
  }
  const size_t colon = s.rfind(':');
  if (colon == std::string::npos) bad(text, "operand '" + s + "' is not xK, tN or value:dtype");
  a.kind = FusedOperand::Kind::literal;
  a.dtype = dtype_from_name(s.substr(colon + 1));
  const std::string v = s.substr(0, colon);
  if (a.dtype == DType::boolean) {
    if (v != "true" && v != "false") bad(text, "bool literal '" + s + "'");
    a.real = v == "true" ? 1 : 0;
    return a;
  }
  char* end = nullptr;
  if (is_float(a.dtype)) {
    if (v == "nan") {
      a.real = std::numeric_limits<double>::quiet_NaN();
      return a;
    }
    a.real = std::strtod(v.c_str(), &end);
  } else {
    a.integer = std::strtoll(v.c_str(), &end, 10);
  }
  if (v.empty() || end != v.c_str() + v.size()) bad(text, "literal '" + s + "'");
  return a;
}

}  // namespace

const FusedOpInfo* find_fused_op(const std::string& name) {
  for (const auto& info : kFusedOps)
    if (name == info.name) return &info;
  return nullptr;
}

const FusedOpInfo& fused_op_info(FusedOp op) { return kFusedOps[size_t(op)]; }

std::string FusedExpression::str() const {
  std::string s;
  for (size_t i = 0; i < steps.size(); ++i) {
    const FusedStep& st = steps[i];
    s += "t" + std::to_string(i) + ":" + dtype_name(st.dtype) + " = " + fused_op_info(st.op).name +
         "(";
    for (size_t j = 0; j < st.args.size(); ++j) {
      const FusedOperand& a = st.args[j];
      if (j) s += ", ";
      if (a.kind == FusedOperand::Kind::input)
        s += "x" + std::to_string(a.index);
      else if (a.kind == FusedOperand::Kind::step)
        s += "t" + std::to_string(a.index);
      else
        s += literal_str(a);
    }
    s += "); ";
  }
  s += "return";
  for (size_t i = 0; i < outputs.size(); ++i) s += (i ? ", t" : " t") + std::to_string(outputs[i]);
  return s;
}

FusedExpression FusedExpression::parse(const std::string& text) {
  FusedExpression e;
  const std::vector<std::string> statements = split(text, ';');
  for (size_t i = 0; i < statements.size(); ++i) {
    const std::string& st = statements[i];
    if (st.rfind("return", 0) == 0) {
      if (i + 1 != statements.size()) bad(text, "statements after return");
      for (const std::string& o : split(st.substr(6), ',')) {
        int k = number_after(o, 't');
        if (k < 0 || size_t(k) >= e.steps.size()) bad(text, "returned value '" + o + "'");
        e.outputs.push_back(k);
      }
      if (e.outputs.empty()) bad(text, "nothing returned");
      return e;
    }
    const size_t eq = st.find('='), open = st.find('('), colon = st.find(':');
    if (eq == std::string::npos || open == std::string::npos || st.back() != ')' || colon > eq)
      bad(text, "statement '" + st + "' is not tN:dtype = op(args)");
    if (number_after(trim(st.substr(0, colon)), 't') != int(e.steps.size()))
      bad(text, "statement '" + st + "' does not define t" + std::to_string(e.steps.size()));
    FusedStep step;
    step.dtype = dtype_from_name(trim(st.substr(colon + 1, eq - colon - 1)));
    const std::string op = trim(st.substr(eq + 1, open - eq - 1));
    const FusedOpInfo* info = find_fused_op(op);
    if (!info) bad(text, "op '" + op + "' cannot be fused");
    step.op = info->op;
    for (const std::string& a : split(st.substr(open + 1, st.size() - open - 2), ',')) {
      step.args.push_back(parse_operand(a, text));
      if (step.args.back().kind == FusedOperand::Kind::input)
        e.num_inputs = std::max(e.num_inputs, step.args.back().index + 1);
    }
    e.steps.push_back(std::move(step));
  }
  bad(text, "no return statement");
}

DType FusedExpression::operand_dtype(const FusedOperand& a,
                                     const std::vector<DType>& input_dtypes) const {
  switch (a.kind) {
    case FusedOperand::Kind::input:
      return input_dtypes.at(size_t(a.index));
    case FusedOperand::Kind::step:
      return steps.at(size_t(a.index)).dtype;
    default:
      return a.dtype;
  }
}

void FusedExpression::check(const std::vector<DType>& input_dtypes) const {
  const std::string text = str();
  if (size_t(num_inputs) != input_dtypes.size())
    fail(ErrorKind::value, "fused expression reads " + std::to_string(num_inputs) +
                               " inputs, the node has " + std::to_string(input_dtypes.size()));
  auto elementwise = [](DType d, bool allow_bool) {
    if (d == DType::boolean) return allow_bool;
    const DTypeInfo& info = dtype_info(d);
    return (info.is_float || info.is_integer) && !info.is_complex && info.bits >= 8;
  };
  for (size_t i = 0; i < steps.size(); ++i) {
    const FusedStep& st = steps[i];
    const FusedOpInfo& info = fused_op_info(st.op);
    if (int(st.args.size()) != info.arity) bad(text, std::string(info.name) + " arity");
    std::vector<DType> d;
    for (const FusedOperand& a : st.args) {
      if (a.kind == FusedOperand::Kind::step && size_t(a.index) >= i)
        bad(text, "t" + std::to_string(i) + " reads t" + std::to_string(a.index));
      if (a.kind == FusedOperand::Kind::input && size_t(a.index) >= input_dtypes.size())
        bad(text, "input x" + std::to_string(a.index) + " does not exist");
      d.push_back(operand_dtype(a, input_dtypes));
      if (!elementwise(d.back(), true))
        fail(ErrorKind::dtype, "fused expression: dtype " + std::string(dtype_name(d.back())) +
                                   " in \"" + text + "\"");
    }
    auto expect = [&](bool ok) {
      if (!ok)
        fail(ErrorKind::dtype, "fused expression: t" + std::to_string(i) + " (" + info.name +
                                   ") has operands or a result of the wrong dtype in \"" + text +
                                   "\"");
    };
    expect(elementwise(st.dtype, true));
    switch (st.op) {
      case FusedOp::cast:
        break;
      case FusedOp::where:
        expect(d[0] == DType::boolean && d[1] == d[2] && st.dtype == d[1]);
        break;
      case FusedOp::equal:
        expect(d[0] == d[1] && st.dtype == DType::boolean);
        break;
      case FusedOp::less:
      case FusedOp::greater:
        expect(d[0] == d[1] && d[0] != DType::boolean && st.dtype == DType::boolean);
        break;
      case FusedOp::neg:
      case FusedOp::abs:
      case FusedOp::relu:
        expect(d[0] != DType::boolean && st.dtype == d[0]);
        break;
      default:
        if (info.arity == 1)
          expect(is_float(d[0]) && st.dtype == d[0]);
        else
          expect(d[0] == d[1] && d[0] != DType::boolean && st.dtype == d[0]);
    }
  }
  if (outputs.empty()) bad(text, "nothing returned");
}

}  // namespace loom::ops
