#include "backends/cuda/fused_source.h"

#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>

#include "loom/error.h"

namespace loom::cuda {

namespace {

using ops::FusedExpression;
using ops::FusedOp;
using ops::FusedOperand;

// Helpers every fused kernel starts with. Conversions use the instructions the unfused
// kernels' intrinsics use (cuda_fp16.h: cvt.f32.f16, cvt.rn.f16.f32; cuda_bf16.h on sm_80+:
// cvt.rn.bf16.f32), the integer rules are core/scalar_semantics.h's.
constexpr const char* kPreamble = R"(
__device__ __forceinline__ float h2f(unsigned short h) {
  float f; asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(h)); return f;
}
__device__ __forceinline__ unsigned short f2h(float f) {
  unsigned short h; asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(f)); return h;
}
__device__ __forceinline__ float bf2f(unsigned short b) { return __uint_as_float(((unsigned)b) << 16); }
__device__ __forceinline__ unsigned short f2bf(float f) {
#if __CUDA_ARCH__ >= 800
  unsigned short b; asm("cvt.rn.bf16.f32 %0, %1;" : "=h"(b) : "f"(f)); return b;
#else
  unsigned u = __float_as_uint(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return 0x7fff;
  return (unsigned short)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
#endif
}
__device__ __forceinline__ float round_f16(float x) { return h2f(f2h(x)); }
__device__ __forceinline__ float round_bf16(float x) { return bf2f(f2bf(x)); }
template <class C, class U> __device__ __forceinline__ C wadd(C a, C b) { return (C)(U)((U)a + (U)b); }
template <class C, class U> __device__ __forceinline__ C wsub(C a, C b) { return (C)(U)((U)a - (U)b); }
template <class C, class U> __device__ __forceinline__ C wmul(C a, C b) { return (C)(U)((U)a * (U)b); }
template <class C, class U> __device__ __forceinline__ C wneg(C a) { return (C)(U)((U)0 - (U)a); }
template <class C, class U, bool S> __device__ __forceinline__ C idiv(C a, C b) {
  if (b == 0) return (C)0;
  if (S && b == (C)-1) return wneg<C, U>(a);
  return (C)(a / b);
}
template <class C, class U, bool S> __device__ __forceinline__ C ipow(C base, C e) {
  if (S && e < (C)0) {
    if (base == (C)1) return (C)1;
    if (base == (C)-1) return (e & 1) ? (C)-1 : (C)1;
    return (C)0;
  }
  C r = 1;
  for (C k = e; k != 0; k /= 2) {
    if (k & 1) r = wmul<C, U>(r, base);
    base = wmul<C, U>(base, base);
  }
  return r;
}
template <class C> __device__ __forceinline__ C maxn(C a, C b) { if (a != a) return a; return a > b ? a : b; }
template <class C> __device__ __forceinline__ C minn(C a, C b) { if (a != a) return a; return a < b ? a : b; }
template <class C> __device__ __forceinline__ C f2i(float v, double past_max, C hi, C lo) {
  if (v != v) return (C)0;
  const double t = trunc((double)v);
  if (t >= past_max) return hi;
  if (t < (double)lo) return lo;
  return (C)t;
}
)";

struct TypeNames {
  const char* compute;
  const char* storage;
  const char* unsigned_type;  // integers: the unsigned type of the same width
  bool is_signed;
};

TypeNames names(DType d) {
  switch (d) {
    case DType::f32:
      return {"float", "float", "", true};
    case DType::f16:
    case DType::bf16:
      return {"float", "unsigned short", "", true};
    case DType::i8:
      return {"signed char", "signed char", "unsigned char", true};
    case DType::u8:
      return {"unsigned char", "unsigned char", "unsigned char", false};
    case DType::i32:
      return {"int", "int", "unsigned int", true};
    case DType::i64:
      return {"long long", "long long", "unsigned long long", true};
    case DType::boolean:
      return {"bool", "unsigned char", "", false};
    default:
      break;
  }
  fail(ErrorKind::unsupported, std::string("fused CUDA kernel: dtype ") + dtype_name(d));
}

std::string literal(const FusedOperand& a) {
  char buf[64];
  if (a.dtype == DType::boolean) return a.real != 0 ? "true" : "false";
  if (is_float(a.dtype)) {
    const float f = float(a.real);
    uint32_t bits;
    std::memcpy(&bits, &f, 4);
    std::snprintf(buf, sizeof buf, "__uint_as_float(0x%08xu)", bits);
  } else {
    std::snprintf(buf, sizeof buf, "((%s)0x%016llxull)", names(a.dtype).compute,
                  static_cast<unsigned long long>(a.integer));
  }
  return buf;
}

// The integer template arguments "C, U" (and ", S") of a dtype.
std::string int_args(DType d, bool with_sign) {
  const TypeNames t = names(d);
  std::string s = std::string(t.compute) + ", " + t.unsigned_type;
  if (with_sign) s += t.is_signed ? ", true" : ", false";
  return s;
}

std::string cast_expr(const std::string& a, DType from, DType to) {
  const std::string to_c = names(to).compute;
  if (to == DType::boolean) return "(" + a + " != (" + names(from).compute + ")0)";
  if (from == DType::boolean) return "((" + to_c + ")(" + a + " ? 1 : 0))";
  if (is_float(from) && is_integer(to)) {
    // scalar::convert: NaN to 0, truncation, saturation at the integer's range.
    const int bits = int(dtype_info(to).bits);
    const bool is_signed = names(to).is_signed;
    const int digits = is_signed ? bits - 1 : bits;
    char buf[160];
    std::snprintf(buf, sizeof buf, "f2i<%s>(%s, %.17g, (%s)0x%llxull, (%s)0x%llxull)", to_c.c_str(),
                  a.c_str(), std::ldexp(1.0, digits), to_c.c_str(),
                  (unsigned long long)(is_signed ? (~0ull >> (65 - bits)) : (~0ull >> (64 - bits))),
                  to_c.c_str(), (unsigned long long)(is_signed ? (~0ull << (bits - 1)) : 0ull));
    return buf;
  }
  if (is_float(to) && is_float(from)) return a;
  return "((" + to_c + ")" + a + ")";
}

std::string step_expr(const ops::FusedStep& st, const std::vector<std::string>& a,
                      const std::vector<DType>& d) {
  const bool f = is_float(d[0]);
  switch (st.op) {
    case FusedOp::add:
      return f ? "__fadd_rn(" + a[0] + ", " + a[1] + ")"
               : "wadd<" + int_args(d[0], false) + ">(" + a[0] + ", " + a[1] + ")";
    case FusedOp::sub:
      return f ? "__fsub_rn(" + a[0] + ", " + a[1] + ")"
               : "wsub<" + int_args(d[0], false) + ">(" + a[0] + ", " + a[1] + ")";
    case FusedOp::mul:
      return f ? "__fmul_rn(" + a[0] + ", " + a[1] + ")"
               : "wmul<" + int_args(d[0], false) + ">(" + a[0] + ", " + a[1] + ")";
    case FusedOp::div:
      return f ? "__fdiv_rn(" + a[0] + ", " + a[1] + ")"
               : "idiv<" + int_args(d[0], true) + ">(" + a[0] + ", " + a[1] + ")";
    case FusedOp::pow:
      return f ? "powf(" + a[0] + ", " + a[1] + ")"
               : "ipow<" + int_args(d[0], true) + ">(" + a[0] + ", " + a[1] + ")";
    case FusedOp::maximum:
      return "maxn(" + a[0] + ", " + a[1] + ")";
    case FusedOp::minimum:
      return "minn(" + a[0] + ", " + a[1] + ")";
    case FusedOp::equal:
      return "(" + a[0] + " == " + a[1] + ")";
    case FusedOp::less:
      return "(" + a[0] + " < " + a[1] + ")";
    case FusedOp::greater:
      return "(" + a[0] + " > " + a[1] + ")";
    case FusedOp::where:
      return "(" + a[0] + " ? " + a[1] + " : " + a[2] + ")";
    case FusedOp::neg:
      return f ? "(-" + a[0] + ")" : "wneg<" + int_args(d[0], false) + ">(" + a[0] + ")";
    case FusedOp::abs:
      if (f) return "fabsf(" + a[0] + ")";
      if (!names(d[0]).is_signed) return a[0];
      return "(" + a[0] + " < 0 ? wneg<" + int_args(d[0], false) + ">(" + a[0] + ") : " + a[0] +
             ")";
    case FusedOp::relu:
      if (!f && !names(d[0]).is_signed) return a[0];
      return "(" + a[0] + " < (" + names(d[0]).compute + ")0 ? (" + names(d[0]).compute +
             ")0 : " + a[0] + ")";
    case FusedOp::exp:
      return "expf(" + a[0] + ")";
    case FusedOp::log:
      return "logf(" + a[0] + ")";
    case FusedOp::sqrt:
      return "sqrtf(" + a[0] + ")";
    case FusedOp::rsqrt:
      return "(1.0f / sqrtf(" + a[0] + "))";
    case FusedOp::sin:
      return "sinf(" + a[0] + ")";
    case FusedOp::cos:
      return "cosf(" + a[0] + ")";
    case FusedOp::tanh:
      return "tanhf(" + a[0] + ")";
    case FusedOp::sigmoid:
      return "(1.0f / (1.0f + expf(-" + a[0] + ")))";
    case FusedOp::silu:
      return "(" + a[0] + " / (1.0f + expf(-" + a[0] + ")))";
    // scalar::gelu and scalar::gelu_tanh, with their float constants.
    case FusedOp::gelu:
      return "(0.5f * " + a[0] + " * (1.0f + erff(" + a[0] + " * 0.70710678118654752f)))";
    case FusedOp::gelu_tanh:
      return "(0.5f * " + a[0] + " * (1.0f + tanhf(0.79788456080286536f * (" + a[0] +
             " + 0.044715f * " + a[0] + " * " + a[0] + " * " + a[0] + "))))";
    case FusedOp::cast:
      return cast_expr(a[0], d[0], st.dtype);
  }
  fail(ErrorKind::internal, "fused CUDA kernel: unknown step");
}

std::string load_expr(DType d, const std::string& element) {
  if (d == DType::f16) return "h2f(" + element + ")";
  if (d == DType::bf16) return "bf2f(" + element + ")";
  if (d == DType::boolean) return "(" + element + " != 0)";
  return element;
}

std::string store_expr(DType d, const std::string& v) {
  if (d == DType::f16) return "f2h(" + v + ")";
  if (d == DType::bf16) return "f2bf(" + v + ")";
  if (d == DType::boolean) return "(unsigned char)(" + v + " ? 1 : 0)";
  return v;
}

}  // namespace

std::string fused_kernel_source(const FusedExpression& e, const FusedKernelShape& shape) {
  e.check(shape.inputs);
  if (shape.access.size() != shape.inputs.size() || shape.rank < 1)
    fail(ErrorKind::internal, "fused CUDA kernel: malformed kernel shape");
  const std::string r = std::to_string(shape.rank);
  std::string s = "// Generated by Loom from the fused expression:\n// " + e.str() + "\n";
  s += kPreamble;
  s += "struct Params {\n  long long n;\n  long long dims[" + r + "];\n";
  bool any_broadcast = false;
  for (size_t k = 0; k < shape.inputs.size(); ++k)
    if (shape.access[k] == FusedAccess::broadcast) {
      s += "  long long strides" + std::to_string(k) + "[" + r + "];\n";
      any_broadcast = true;
    }
  for (size_t k = 0; k < shape.inputs.size(); ++k)
    s += "  const " + std::string(names(shape.inputs[k]).storage) + "* in" + std::to_string(k) +
         ";\n";
  for (size_t j = 0; j < e.outputs.size(); ++j)
    s += "  " + std::string(names(e.steps[size_t(e.outputs[j])].dtype).storage) + "* out" +
         std::to_string(j) + ";\n";
  s += "};\n\n";
  s += std::string("extern \"C\" __global__ void __launch_bounds__(256) ") + kFusedKernelName +
       "(const Params p) {\n"
       "  const long long stride = (long long)gridDim.x * blockDim.x;\n"
       "  for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < p.n; "
       "i += stride) {\n";
  if (any_broadcast) {
    for (size_t k = 0; k < shape.inputs.size(); ++k)
      if (shape.access[k] == FusedAccess::broadcast)
        s += "    long long o" + std::to_string(k) + " = 0;\n";
    s += "    {\n      long long rest = i;\n#pragma unroll\n      for (int d = " + r +
         " - 1; d >= 0; --d) {\n        const long long c = rest % p.dims[d];\n"
         "        rest /= p.dims[d];\n";
    for (size_t k = 0; k < shape.inputs.size(); ++k)
      if (shape.access[k] == FusedAccess::broadcast)
        s += "        o" + std::to_string(k) + " += c * p.strides" + std::to_string(k) + "[d];\n";
    s += "      }\n    }\n";
  }
  for (size_t k = 0; k < shape.inputs.size(); ++k) {
    const std::string ks = std::to_string(k);
    const std::string index = shape.access[k] == FusedAccess::same     ? "i"
                              : shape.access[k] == FusedAccess::scalar ? "0"
                                                                       : "o" + ks;
    s += "    const " + std::string(names(shape.inputs[k]).compute) + " x" + ks + " = " +
         load_expr(shape.inputs[k], "p.in" + ks + "[" + index + "]") + ";\n";
  }
  for (size_t i = 0; i < e.steps.size(); ++i) {
    const ops::FusedStep& st = e.steps[i];
    std::vector<std::string> a;
    std::vector<DType> d;
    for (const FusedOperand& op : st.args) {
      d.push_back(e.operand_dtype(op, shape.inputs));
      if (op.kind == FusedOperand::Kind::input)
        a.push_back("x" + std::to_string(op.index));
      else if (op.kind == FusedOperand::Kind::step)
        a.push_back("t" + std::to_string(op.index));
      else
        a.push_back(literal(op));
    }
    std::string v = step_expr(st, a, d);
    // f16 and bf16 results are rounded as the unfused kernels round when they store (where
    // only picks an operand, already rounded).
    if (st.op != FusedOp::where && st.dtype == DType::f16) v = "round_f16(" + v + ")";
    if (st.op != FusedOp::where && st.dtype == DType::bf16) v = "round_bf16(" + v + ")";
    s += "    const " + std::string(names(st.dtype).compute) + " t" + std::to_string(i) + " = " +
         v + ";\n";
  }
  for (size_t j = 0; j < e.outputs.size(); ++j) {
    const DType d = e.steps[size_t(e.outputs[j])].dtype;
    s += "    p.out" + std::to_string(j) +
         "[i] = " + store_expr(d, "t" + std::to_string(e.outputs[j])) + ";\n";
  }
  s += "  }\n}\n";
  return s;
}

}  // namespace loom::cuda
