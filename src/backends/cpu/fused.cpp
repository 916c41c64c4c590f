// CPU kernel of `fused`: the node's expression evaluated in one pass over memory. The output
// is cut into blocks of kBlock elements (the blocks run on OpenMP threads); for each block,
// every input is read once into a register (a block-sized buffer of the compute type:
// float for f32, f16 and bf16, the integer itself, a 0/1 byte for bool), each step is one
// loop over registers, and the returned steps are written out. Same-shape inputs and
// returned steps whose storage is their register type (f32, integers) are read and written
// in place, without a copy. Only the outputs touch the arena; a thread's registers stay in
// its cache.
//
// Each step applies the same scalar rule as the op's own kernel (core/scalar_semantics.h,
// the same float expressions) and an f16 or bf16 result is rounded to its dtype after every
// step, as the unfused kernels round when they store: the fused node gives the unfused
// graph's bits.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>
#include <type_traits>
#include <vector>

#include "backends/cpu/broadcast_loop.h"
#include "backends/cpu/convert.h"
#include "backends/cpu/cpu_kernels.h"
#include "backends/cpu/exp_f32.h"
#include "ops/fused_expression.h"

namespace loom::cpu {

namespace {

using ops::FusedExpression;
using ops::FusedOp;
using ops::FusedOperand;

constexpr int64_t kBlock = 2048;
// The widest compute type is 8 bytes; the extra 5 cache lines put the registers at different
// offsets modulo 4 KiB, so that a step's loads and its store cannot 4K-alias.
constexpr size_t kSlotBytes = size_t(kBlock) * 8 + 320;

// A register's element type for storage type S (bool is a 0/1 byte).
template <class S>
using reg_t = std::conditional_t<std::is_same_v<S, bool>, uint8_t, compute_t<S>>;

using StepFn = void (*)(void* dst, const void* const* src, int64_t n);

// ---- the step functions, one per op and register type -------------------------------------

#define LOOM_FUSED_BINARY(Name, expr) \
  struct Name {                       \
    template <class C>                \
    auto operator()(C a, C b) const { \
      return expr;                    \
    }                                 \
  };
LOOM_FUSED_BINARY(AddF, scalar::add(a, b))
LOOM_FUSED_BINARY(SubF, scalar::sub(a, b))
LOOM_FUSED_BINARY(MulF, scalar::mul(a, b))
LOOM_FUSED_BINARY(DivF, scalar::div(a, b))
LOOM_FUSED_BINARY(PowF, scalar::pow(a, b))
LOOM_FUSED_BINARY(MaximumF, scalar::maximum(a, b))
LOOM_FUSED_BINARY(MinimumF, scalar::minimum(a, b))
LOOM_FUSED_BINARY(EqualF, uint8_t(a == b))
LOOM_FUSED_BINARY(LessF, uint8_t(a < b))
LOOM_FUSED_BINARY(GreaterF, uint8_t(a > b))
#undef LOOM_FUSED_BINARY

// The float math exactly as the unary kernels (unary.cpp) write it.
#define LOOM_FUSED_UNARY(Name, expr) \
  struct Name {                      \
    template <class C>               \
    C operator()(C x) const {        \
      return expr;                   \
    }                                \
  };
LOOM_FUSED_UNARY(NegF, scalar::negate(x))
LOOM_FUSED_UNARY(AbsF, scalar::absolute(x))
LOOM_FUSED_UNARY(ReluF, scalar::relu(x))
LOOM_FUSED_UNARY(ExpF, exp_f32(x))  // the unfused kernel's formula (exp_f32.h)
LOOM_FUSED_UNARY(LogF, std::log(x))
LOOM_FUSED_UNARY(SqrtF, std::sqrt(x))
LOOM_FUSED_UNARY(RsqrtF, 1.0f / std::sqrt(x))
LOOM_FUSED_UNARY(SinF, std::sin(x))
LOOM_FUSED_UNARY(CosF, std::cos(x))
LOOM_FUSED_UNARY(TanhF, std::tanh(x))
LOOM_FUSED_UNARY(SigmoidF, 1.0f / (1.0f + std::exp(-x)))
LOOM_FUSED_UNARY(SiluF, x / (1.0f + std::exp(-x)))
LOOM_FUSED_UNARY(GeluF, scalar::gelu(x))
LOOM_FUSED_UNARY(GeluTanhF, scalar::gelu_tanh(x))
#undef LOOM_FUSED_UNARY

template <class C, class F>
void binary_step(void* dst, const void* const* src, int64_t n) {
  using R = decltype(F{}(C{}, C{}));
  R* __restrict y = static_cast<R*>(dst);
  const C* __restrict a = static_cast<const C*>(src[0]);
  const C* __restrict b = static_cast<const C*>(src[1]);
  const F f;
  for (int64_t j = 0; j < n; ++j) y[j] = f(a[j], b[j]);
}

template <class C, class F>
void unary_step(void* dst, const void* const* src, int64_t n) {
  C* __restrict y = static_cast<C*>(dst);
  const C* __restrict x = static_cast<const C*>(src[0]);
  const F f;
  for (int64_t j = 0; j < n; ++j) y[j] = f(x[j]);
}

template <class C>
void where_step(void* dst, const void* const* src, int64_t n) {
  C* __restrict y = static_cast<C*>(dst);
  const uint8_t* __restrict c = static_cast<const uint8_t*>(src[0]);
  const C* __restrict a = static_cast<const C*>(src[1]);
  const C* __restrict b = static_cast<const C*>(src[2]);
  for (int64_t j = 0; j < n; ++j) y[j] = c[j] ? a[j] : b[j];
}

// cast as cast.cpp converts: compute_t<In> to compute_t<Out> by the shared rules.
template <class In, class Out>
void cast_step(void* dst, const void* const* src, int64_t n) {
  reg_t<Out>* __restrict y = static_cast<reg_t<Out>*>(dst);
  const reg_t<In>* __restrict x = static_cast<const reg_t<In>*>(src[0]);
  for (int64_t j = 0; j < n; ++j) y[j] = reg_t<Out>(convert<compute_t<Out>>(compute_t<In>(x[j])));
}

// Rounds a float register to f16 or bf16 and back, as storing and loading would.
template <class Half>
void round_step(void* reg, int64_t n) {
  float* x = static_cast<float*>(reg);
  Half tmp[kBlock];
  convert_from_float(x, tmp, n);
  convert_to_float(tmp, x, n);
}

template <class F>
StepFn numeric_binary(DType d) {
  return dispatch_all(d, [](auto tag) -> StepFn {
    using S = decltype(tag);
    if constexpr (std::is_same_v<S, bool>) {
      return nullptr;
    } else {
      return binary_step<reg_t<S>, F>;
    }
  });
}

template <class F>
StepFn numeric_unary(DType d) {
  return dispatch_all(d, [](auto tag) -> StepFn {
    using S = decltype(tag);
    if constexpr (std::is_same_v<S, bool>) {
      return nullptr;
    } else {
      return unary_step<reg_t<S>, F>;
    }
  });
}

// The step function of a step whose operands have dtypes `in`.
StepFn step_function(const ops::FusedStep& st, const std::vector<DType>& in) {
  switch (st.op) {
    case FusedOp::add:
      return numeric_binary<AddF>(in[0]);
    case FusedOp::sub:
      return numeric_binary<SubF>(in[0]);
    case FusedOp::mul:
      return numeric_binary<MulF>(in[0]);
    case FusedOp::div:
      return numeric_binary<DivF>(in[0]);
    case FusedOp::pow:
      return numeric_binary<PowF>(in[0]);
    case FusedOp::maximum:
      return numeric_binary<MaximumF>(in[0]);
    case FusedOp::minimum:
      return numeric_binary<MinimumF>(in[0]);
    case FusedOp::less:
      return numeric_binary<LessF>(in[0]);
    case FusedOp::greater:
      return numeric_binary<GreaterF>(in[0]);
    case FusedOp::equal:
      return dispatch_all(
          in[0], [](auto tag) -> StepFn { return binary_step<reg_t<decltype(tag)>, EqualF>; });
    case FusedOp::where:
      return dispatch_all(in[1],
                          [](auto tag) -> StepFn { return where_step<reg_t<decltype(tag)>>; });
    case FusedOp::neg:
      return numeric_unary<NegF>(in[0]);
    case FusedOp::abs:
      return numeric_unary<AbsF>(in[0]);
    case FusedOp::relu:
      return numeric_unary<ReluF>(in[0]);
    case FusedOp::exp:
      return unary_step<float, ExpF>;
    case FusedOp::log:
      return unary_step<float, LogF>;
    case FusedOp::sqrt:
      return unary_step<float, SqrtF>;
    case FusedOp::rsqrt:
      return unary_step<float, RsqrtF>;
    case FusedOp::sin:
      return unary_step<float, SinF>;
    case FusedOp::cos:
      return unary_step<float, CosF>;
    case FusedOp::tanh:
      return unary_step<float, TanhF>;
    case FusedOp::sigmoid:
      return unary_step<float, SigmoidF>;
    case FusedOp::silu:
      return unary_step<float, SiluF>;
    case FusedOp::gelu:
      return unary_step<float, GeluF>;
    case FusedOp::gelu_tanh:
      return unary_step<float, GeluTanhF>;
    case FusedOp::cast:
      return dispatch_all(in[0], [&](auto in_tag) -> StepFn {
        return dispatch_all(st.dtype, [](auto out_tag) -> StepFn {
          return cast_step<decltype(in_tag), decltype(out_tag)>;
        });
      });
  }
  return nullptr;
}

// ---- the prepared program ------------------------------------------------------------------

struct Instruction {
  StepFn fn = nullptr;
  void (*round)(void*, int64_t) = nullptr;
  int dst = 0;
  int src[3] = {0, 0, 0};
  // A literal operand is filled into its source slot before the step.
  int literal_slot[3] = {-1, -1, -1};
  uint64_t literal_bits[3] = {0, 0, 0};
  int literal_bytes[3] = {0, 0, 0};
};

struct Load {
  int input;
  int slot;
};

struct Store {
  int output;
  int slot;
};

// A value read or written in place: a same-shape input, or a returned step, whose dtype is
// its own register type (f32 and the integers). Slot -(1 + i) names direct[i].
struct Direct {
  bool output;
  int index;
  size_t element_bytes;
};

struct Prepared {
  std::vector<Direct> direct;
  std::vector<Load> loads;
  std::vector<Instruction> code;
  std::vector<Store> stores;
  int slots = 0;
  // Per input, its layout over the output's extents.
  Extents out_shape;
  std::vector<Extents> in_shapes;
  std::vector<BroadcastLayout<1>> layouts;
};

// A literal's bits in its register type.
void literal_bits(const FusedOperand& a, uint64_t& bits, int& bytes) {
  dispatch_all(a.dtype, [&](auto tag) {
    using R = reg_t<decltype(tag)>;
    R v;
    if constexpr (std::is_same_v<R, float>)
      v = float(a.real);
    else if constexpr (std::is_same_v<decltype(tag), bool>)
      v = a.real != 0 ? 1 : 0;
    else
      v = R(a.integer);
    bits = 0;
    std::memcpy(&bits, &v, sizeof v);
    bytes = int(sizeof v);
  });
}

std::shared_ptr<Prepared> prepare(const FusedExpression& e, std::span<const TensorView> in,
                                  std::span<TensorView> out) {
  auto p = std::make_shared<Prepared>();
  std::vector<DType> in_dtypes;
  for (const auto& v : in) in_dtypes.push_back(v.dtype);
  e.check(in_dtypes);
  const size_t steps = e.steps.size();
  // Last step reading each input and step; outputs live to the end.
  std::vector<size_t> input_last(in.size(), 0), step_last(steps, 0);
  for (size_t i = 0; i < steps; ++i)
    for (const auto& a : e.steps[i].args) {
      if (a.kind == FusedOperand::Kind::input) input_last[size_t(a.index)] = i;
      if (a.kind == FusedOperand::Kind::step) step_last[size_t(a.index)] = i;
    }
  for (int o : e.outputs) step_last[size_t(o)] = steps;

  std::vector<int> free_slots;
  auto take = [&] {
    if (!free_slots.empty()) {
      int s = free_slots.back();
      free_slots.pop_back();
      return s;
    }
    return p->slots++;
  };
  auto in_place = [](DType d) {
    return d != DType::f16 && d != DType::bf16 && d != DType::boolean;
  };
  auto direct = [&](bool output, int index, DType d) {
    p->direct.push_back({output, index, storage_bytes(d, 1)});
    return -int(p->direct.size());
  };
  auto release = [&](int slot) {
    if (slot >= 0) free_slots.push_back(slot);
  };
  std::vector<int> input_slot(in.size(), -1), step_slot(steps, -1);
  for (size_t k = 0; k < in.size(); ++k) {
    if (in_place(in[k].dtype) && in[k].numel() == out[0].numel()) {
      input_slot[k] = direct(false, int(k), in[k].dtype);
    } else {
      input_slot[k] = take();
      p->loads.push_back({int(k), input_slot[k]});
    }
  }
  // The output a step is written to in place, if any.
  std::vector<int> written_to(steps, -1);
  for (size_t k = e.outputs.size(); k-- > 0;)
    if (in_place(e.steps[size_t(e.outputs[k])].dtype)) written_to[size_t(e.outputs[k])] = int(k);
  for (size_t i = 0; i < steps; ++i) {
    const ops::FusedStep& st = e.steps[i];
    Instruction ins;
    std::vector<DType> d;
    for (size_t j = 0; j < st.args.size(); ++j) {
      const FusedOperand& a = st.args[j];
      d.push_back(e.operand_dtype(a, in_dtypes));
      if (a.kind == FusedOperand::Kind::input) {
        ins.src[j] = input_slot[size_t(a.index)];
      } else if (a.kind == FusedOperand::Kind::step) {
        ins.src[j] = step_slot[size_t(a.index)];
      } else {
        ins.src[j] = ins.literal_slot[j] = take();
        literal_bits(a, ins.literal_bits[j], ins.literal_bytes[j]);
      }
    }
    ins.fn = step_function(st, d);
    if (!ins.fn) fail(ErrorKind::internal, "fused: no CPU step for " + e.str());
    if (st.op != FusedOp::where) {
      if (st.dtype == DType::f16) ins.round = round_step<f16_t>;
      if (st.dtype == DType::bf16) ins.round = round_step<bf16_t>;
    }
    // The result never shares a slot with an operand: a cast may widen its elements.
    ins.dst = step_slot[i] = written_to[i] >= 0 ? direct(true, written_to[i], st.dtype) : take();
    for (size_t j = 0; j < st.args.size(); ++j) {
      const FusedOperand& a = st.args[j];
      if (a.kind == FusedOperand::Kind::literal) release(ins.literal_slot[j]);
      if (a.kind == FusedOperand::Kind::input && input_last[size_t(a.index)] == i)
        release(input_slot[size_t(a.index)]), input_last[size_t(a.index)] = steps + 1;
      if (a.kind == FusedOperand::Kind::step && step_last[size_t(a.index)] == i)
        release(step_slot[size_t(a.index)]), step_last[size_t(a.index)] = steps + 1;
    }
    p->code.push_back(ins);
  }
  for (size_t k = 0; k < e.outputs.size(); ++k)
    if (written_to[size_t(e.outputs[k])] != int(k))
      p->stores.push_back({int(k), step_slot[size_t(e.outputs[k])]});
  p->out_shape = out[0].shape;
  for (const auto& v : in) {
    p->in_shapes.push_back(v.shape);
    p->layouts.push_back(broadcast_layout<1>(out[0].shape, {&v}));
  }
  return p;
}

// ---- one block -----------------------------------------------------------------------------

template <class S>
void load_run(const S* x, int64_t stride, int64_t n, reg_t<S>* out) {
  if constexpr (is_half_v<S>) {
    load_half_block(x, stride, n, out);
  } else if (stride == 1) {
    for (int64_t j = 0; j < n; ++j) out[j] = reg_t<S>(load_element(x + j));
  } else if (stride == 0) {
    std::fill_n(out, n, reg_t<S>(load_element(x)));
  } else {
    for (int64_t j = 0; j < n; ++j) out[j] = reg_t<S>(load_element(x + j * stride));
  }
}

// Reads elements [pos, pos + n) of the output's index space from input `v` into `reg`.
void load_block(const TensorView& v, const BroadcastLayout<1>& layout, int64_t pos, int64_t n,
                unsigned char* reg) {
  dispatch_all(v.dtype, [&](auto tag) {
    using S = decltype(tag);
    const S* x = v.as<const S>();
    auto* out = reinterpret_cast<reg_t<S>*>(reg);
    const int rank = int(layout.shape.size());
    const int64_t inner = layout.shape.back(), inner_stride = layout.strides[0].back();
    for (int64_t done = 0; done < n;) {
      const int64_t at = pos + done;
      const int64_t col = at % inner;
      const int64_t count = std::min(inner - col, n - done);
      int64_t offset = col * inner_stride;
      int64_t row = at / inner;
      for (int d = rank - 2; d >= 0 && row > 0; --d) {
        offset += (row % layout.shape[size_t(d)]) * layout.strides[0][size_t(d)];
        row /= layout.shape[size_t(d)];
      }
      load_run(x + offset, inner_stride, count, out + done);
      done += count;
    }
  });
}

void store_block(const unsigned char* reg, TensorView& out, int64_t pos, int64_t n) {
  dispatch_all(out.dtype, [&](auto tag) {
    using S = decltype(tag);
    const auto* r = reinterpret_cast<const reg_t<S>*>(reg);
    S* y = out.as<S>() + pos;
    if constexpr (is_half_v<S>) {
      convert_from_float(r, y, n);
    } else {
      for (int64_t j = 0; j < n; ++j) y[j] = S(r[j]);
    }
  });
}

void fill_slot(unsigned char* slot, uint64_t bits, int bytes, int64_t n) {
  switch (bytes) {
    case 1:
      std::fill_n(slot, n, uint8_t(bits));
      break;
    case 2:
      std::fill_n(reinterpret_cast<uint16_t*>(slot), n, uint16_t(bits));
      break;
    case 4:
      std::fill_n(reinterpret_cast<uint32_t*>(slot), n, uint32_t(bits));
      break;
    default:
      std::fill_n(reinterpret_cast<uint64_t*>(slot), n, bits);
      break;
  }
}

void run_block(const Prepared& p, std::span<const TensorView> in, std::span<TensorView> out,
               int64_t pos, int64_t n, unsigned char* regs) {
  auto slot = [&](int s) -> unsigned char* {
    if (s >= 0) return regs + size_t(s) * kSlotBytes;
    const Direct& d = p.direct[size_t(-s - 1)];
    const TensorView& v = d.output ? out[size_t(d.index)] : in[size_t(d.index)];
    return static_cast<unsigned char*>(v.data) + size_t(pos) * d.element_bytes;
  };
  for (const Load& l : p.loads)
    load_block(in[size_t(l.input)], p.layouts[size_t(l.input)], pos, n, slot(l.slot));
  for (const Instruction& ins : p.code) {
    const void* src[3];
    for (int j = 0; j < 3; ++j) {
      if (ins.literal_slot[j] >= 0)
        fill_slot(slot(ins.literal_slot[j]), ins.literal_bits[j], ins.literal_bytes[j], n);
      src[j] = slot(ins.src[j]);
    }
    ins.fn(slot(ins.dst), src, n);
    if (ins.round) ins.round(slot(ins.dst), n);
  }
  for (const Store& s : p.stores) store_block(slot(s.slot), out[size_t(s.output)], pos, n);
}

struct FusedState {
  std::shared_ptr<const FusedExpression> expression;
  std::shared_ptr<Prepared> prepared;
};

void run_fused(KernelContext& ctx, const ir::Node& node, std::span<const TensorView> in,
               std::span<TensorView> out) {
  std::shared_ptr<void> local;
  std::shared_ptr<void>& holder = ctx.state ? *ctx.state : local;
  auto* state = static_cast<FusedState*>(holder.get());
  if (!state) {
    auto fresh = std::make_shared<FusedState>();
    fresh->expression = std::make_shared<FusedExpression>(
        FusedExpression::parse(node.attrs.get<std::string>("expression")));
    state = fresh.get();
    holder = std::move(fresh);
  }
  bool same = state->prepared && state->prepared->out_shape == out[0].shape &&
              state->prepared->in_shapes.size() == in.size();
  for (size_t k = 0; same && k < in.size(); ++k)
    same = state->prepared->in_shapes[k] == in[k].shape;
  if (!same) state->prepared = prepare(*state->expression, in, out);
  const Prepared& p = *state->prepared;

  const int64_t total = out[0].numel();
  if (total == 0) return;
  const int64_t blocks = (total + kBlock - 1) / kBlock;
  parallel_for(blocks, std::max<int64_t>(1, kParallelGrain / kBlock), [&](int64_t b) {
    // A thread's registers, kept between calls so that a steady-state run allocates nothing.
    thread_local std::vector<unsigned char> regs;
    const size_t need = size_t(p.slots) * kSlotBytes;
    if (regs.size() < need) regs.resize(need);
    const int64_t pos = b * kBlock;
    run_block(p, in, out, pos, std::min(kBlock, total - pos), regs.data());
  });
}

}  // namespace

void register_fused_kernels(Backend& b) { b.add_kernel("fused", Kernel{"cpu.fused", run_fused}); }

}  // namespace loom::cpu
