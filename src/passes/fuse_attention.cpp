// Rewrites the decomposed attention of imported models,
//   matmul(q, kᵀ) -> scale -> [+ mask | where(mask, ·, -inf)] -> softmax(axis -1) -> matmul(·, v),
// into scaled_dot_product_attention, which never holds the Sq x Skv scores. The scale is any
// product of muls by (and divs by) scalar constants on q, on k or on the scores; kᵀ may be a
// transpose/permute of k or matmul's transpose_b; k and v may be repeated over the query heads
// (GQA: reshape -> broadcast_to [B, Hkv, G, S, D] -> reshape [B, Hkv·G, S, D]), in which case
// the fused op reads them unrepeated. Rank-3 attention ([B·H, S, D], as bmm writes it) runs
// as [1, B·H, S, D] through reshapes (views). Only q, k, v with matching dims (equal static
// sizes or the same symbol), f32/f16/bf16, and only where the scores, the scaled and masked
// scores and the probabilities have no other reader and are not outputs. A row whose keys are
// all masked gives zeros instead of the unfused NaN (the fused op's rule). A constant mask that
// is exactly the causal one (aligned to the end of the keys) becomes the op's causal option, so
// the kernels skip the hidden keys and the mask-less tensor-core kernel can take the node. The
// device must have a kernel for the fused node (the CUDA kernels' head dim limit).
#include <cmath>
#include <memory>
#include <optional>
#include <vector>

#include "backends/backend.h"
#include "ir/op_registry.h"
#include "ir/use_lists.h"
#include "loom/error.h"
#include "passes/pass.h"
#include "passes/quantized_gemv_fusion.h"

namespace loom::passes {

namespace {

using Perm = std::vector<int64_t>;

Perm identity(size_t rank) {
  Perm p(rank);
  for (size_t i = 0; i < rank; ++i) p[i] = int64_t(i);
  return p;
}

Perm swap_last(size_t rank) {
  Perm p = identity(rank);
  std::swap(p[rank - 2], p[rank - 1]);
  return p;
}

struct Ops {
  const ir::OpDef& matmul;
  const ir::OpDef& softmax;
  const ir::OpDef& mul;
  const ir::OpDef& div;
  const ir::OpDef& add;
  const ir::OpDef& where;
  const ir::OpDef& constant;
  const ir::OpDef& transpose;
  const ir::OpDef& reshape;
  const ir::OpDef& broadcast_to;
  const ir::OpDef& attention;
};

const ir::TensorType& type_of(ir::Value v) { return v.node->type(v.output); }

// Equal and known: a static size, or the same symbol (never the "unknown" dim).
bool same(const Dim& a, const Dim& b) { return a == b && a != Dim::unknown(); }

bool all_ones(const Shape& s) {
  for (const Dim& d : s)
    if (!(d.is_static() && d.value() == 1)) return false;
  return true;
}

// The value of a constant with one element; nullopt for anything else.
std::optional<double> scalar_constant(const Ops& ops, ir::Value v) {
  if (v.node->op != &ops.constant || !all_ones(type_of(v).shape)) return std::nullopt;
  std::vector<float> values = v.node->attrs.get<TensorData>("value").to_floats();
  if (values.size() != 1) return std::nullopt;
  return double(values[0]);
}

// A transpose's permutation with negative axes resolved.
Perm perm_of(const ir::Node& transpose) {
  Perm p = transpose.attrs.get<Perm>("perm");
  for (auto& a : p)
    if (a < 0) a += int64_t(p.size());
  return p;
}

// transpose(transpose(x, inner), outer) == transpose(x, result).
Perm compose(const Perm& inner, const Perm& outer) {
  Perm r(outer.size());
  for (size_t i = 0; i < outer.size(); ++i) r[i] = inner[size_t(outer[i])];
  return r;
}

// If `v` is mul(v', c) / mul(c, v') / div(v', c) with c a scalar constant that does not widen
// v', multiplies `scale` and returns v'.
std::optional<ir::Value> peel_scale(const Ops& ops, ir::Value v, double& scale) {
  ir::Node* n = v.node;
  if (n->op != &ops.mul && n->op != &ops.div) return std::nullopt;
  for (int side = 0; side < 2; ++side) {
    if (side == 1 && n->op == &ops.div) break;
    ir::Value other = n->inputs[size_t(side)];
    std::optional<double> c = scalar_constant(ops, n->inputs[size_t(1 - side)]);
    if (!c || !(type_of(other) == n->type())) continue;
    if (n->op == &ops.div) {
      if (*c == 0.0) return std::nullopt;
      scale /= *c;
    } else {
      scale *= *c;
    }
    return other;
  }
  return std::nullopt;
}

// An operand as transpose(base, perm) (no node made yet).
struct Operand {
  ir::Value base;
  Perm perm;
};

// Follows transposes (and, when `scale` is given, scalar muls) down from `v`, read as
// transpose(v, perm). Prefers the deepest value below the last scale that is the operand as
// `want` (no transpose to make: the peeled ones are left to dead-code elimination), else the
// deepest value.
Operand peel(const Ops& ops, ir::Value v, Perm perm, const Perm& want, double* scale) {
  std::optional<Operand> chosen;
  if (perm == want) chosen = Operand{v, perm};
  for (;;) {
    if (type_of(v).shape.size() != perm.size()) break;
    if (v.node->op == &ops.transpose) {
      perm = compose(perm_of(*v.node), perm);
      v = v.node->inputs[0];
    } else if (std::optional<ir::Value> inner; scale && (inner = peel_scale(ops, v, *scale))) {
      v = *inner;
      chosen.reset();
    } else {
      break;
    }
    if (perm == want) chosen = Operand{v, perm};
  }
  return chosen ? *chosen : Operand{v, perm};
}

// x [B, H, S, D] repeated over groups as reshape(broadcast_to(x5 [B, Hkv, 1, S, D],
// [B, Hkv, G, S, D]), [B, Hkv·G, S, D]): head h reads kv head h / G, as the fused op does.
// Returns x5 and Hkv; nullopt for anything else.
struct Repeat {
  ir::Value x5;
  Shape unrepeated;  // [B, Hkv, S, D]
};

std::optional<Repeat> peel_repeat(const Ops& ops, ir::Value v) {
  const Shape& out = type_of(v).shape;
  if (v.node->op != &ops.reshape || out.size() != 4) return std::nullopt;
  ir::Value b = v.node->inputs[0];
  if (b.node->op != &ops.broadcast_to) return std::nullopt;
  const Shape& wide = type_of(b).shape;
  ir::Value x5 = b.node->inputs[0];
  const Shape& narrow = type_of(x5).shape;
  if (wide.size() != 5 || narrow.size() != 5) return std::nullopt;
  const Dim &hq = out[1], &hkv = wide[1], &g = wide[2];
  if (!hq.is_static() || !hkv.is_static() || !g.is_static() ||
      hkv.value() * g.value() != hq.value())
    return std::nullopt;
  if (!same(out[0], wide[0]) || !same(out[2], wide[3]) || !same(out[3], wide[4]))
    return std::nullopt;
  if (!same(narrow[0], wide[0]) || !same(narrow[1], hkv) || !(narrow[2] == Dim(1)) ||
      !same(narrow[3], wide[3]) || !same(narrow[4], wide[4]))
    return std::nullopt;
  return Repeat{x5, {out[0], hkv, out[2], out[3]}};
}

// A node made by the pass, checked as Graph::add_node checks one; not yet in the program.
std::unique_ptr<ir::Node> make_node(ir::Program& program, const ir::OpDef& def,
                                    std::vector<ir::Value> inputs, Attributes attrs) {
  auto node = std::make_unique<ir::Node>();
  node->op = &def;
  std::vector<ir::TensorType> types;
  for (const auto& in : inputs) types.push_back(type_of(in));
  ir::check_attributes(def.name, def.attrs, attrs);
  if (def.check_attrs) {
    std::vector<bool> present(def.inputs.size(), false);
    for (size_t i = 0; i < inputs.size() && i < present.size(); ++i) present[i] = true;
    def.check_attrs(def.name, attrs, present);
  }
  ir::InferContext ctx{def.name, types, attrs, nullptr};
  node->outputs = def.infer(ctx);
  node->inputs = std::move(inputs);
  node->attrs = std::move(attrs);
  node->id = program.next_id();
  return node;
}

// The device has a kernel for the fused node, asked as compile's check asks (symbols as 1,
// contiguous inputs; a view the kernel does not read is gathered). The CUDA kernels take head
// dims up to 512 only, so off the CPU, whose kernel takes every shape, D must be static.
bool device_takes(const PassContext& ctx, const ir::Node& node) {
  if (ctx.device.kind != DeviceKind::cpu && !type_of(node.inputs[0]).shape.back().is_static())
    return false;
  std::vector<TensorView> in;
  for (const auto& v : node.inputs) {
    const ir::TensorType& t = type_of(v);
    Extents shape;
    for (const Dim& d : t.shape) shape.push_back(d.is_static() ? d.value() : 1);
    in.push_back(TensorView{nullptr, t.dtype, shape, contiguous_strides(shape)});
  }
  return !backend_for(ctx.device).kernels_for(node, in).empty();
}

struct Match {
  ir::Node* scores = nullptr;    // matmul(q, kᵀ)
  std::vector<ir::Node*> chain;  // scores .. probs @ v, in program order
  ir::Node* output = nullptr;    // matmul(probs, v)
  Operand q, k, v;
  std::optional<ir::Value> mask;
  bool causal = false;  // the mask was a constant causal one, replaced by the op's option
  double scale = 1.0;
};

// Whether `mask` is a constant that hides exactly what the op's causal option hides for
// scores [..., Sq, Skv] (Sq <= Skv, static): query i sees key j iff j <= i + Skv - Sq. Bool
// masks are true where visible; additive ones 0 there and, where hidden, -inf or a value at
// or below f16's lowest (HF's finfo(dtype).min), which exp takes to exactly 0 next to any
// visible score. Leading dims may only repeat the pattern.
bool is_causal_constant(const Ops& ops, ir::Value mask, const Shape& scores) {
  const ir::TensorType& t = type_of(mask);
  if (mask.node->op != &ops.constant || t.shape.size() < 2 || scores.size() < 2) return false;
  const Dim& sq = scores[scores.size() - 2];
  const Dim& skv = scores.back();
  if (!sq.is_static() || !skv.is_static() || sq.value() > skv.value()) return false;
  if (!same(t.shape[t.shape.size() - 2], sq) || !same(t.shape.back(), skv)) return false;
  const std::vector<float> values = mask.node->attrs.get<TensorData>("value").to_floats();
  const int64_t rows = sq.value(), keys = skv.value(), shift = keys - rows;
  const bool boolean = t.dtype == DType::boolean;
  constexpr float kLowestF16 = -65504.f;
  for (size_t e = 0; e < values.size(); ++e) {
    const int64_t j = int64_t(e) % keys, i = int64_t(e) / keys % rows;
    const bool visible = j <= i + shift;
    const float v = values[e];
    const bool ok = boolean ? (v != 0.f) == visible : visible ? v == 0.f : v <= kLowestF16;
    if (!ok) return false;
  }
  return true;
}

// Makes the fused node (and any transpose or reshape it reads) before match.output and
// points output's readers at it; false, changing nothing, when the op refuses the shapes.
bool rewrite(ir::Program& program, const PassContext& ctx, const Ops& ops, Match& m) {
  std::vector<std::unique_ptr<ir::Node>> made;
  try {
    // k and v as [B, Hkv, Skv, D] values: a repeat is read unrepeated when both are repeated.
    auto plain = [&](const Operand& o) -> ir::Value {
      if (o.perm == identity(o.perm.size())) return o.base;
      made.push_back(make_node(program, ops.transpose, {o.base}, {{"perm", o.perm}}));
      return {made.back().get(), 0};
    };
    ir::Value q = plain(m.q), k = plain(m.k), v = plain(m.v);
    Shape ss = m.scores->type().shape;  // [B, Hq, Sq, Skv]
    auto rk = peel_repeat(ops, k), rv = peel_repeat(ops, v);
    if (ss.size() == 3) {
      // [B·H, S, D] as [1, B·H, S, D]: a unit axis in front is a view.
      auto widen = [&](ir::Value x) -> ir::Value {
        Shape shape = type_of(x).shape;
        if (shape.size() != 3) return x;  // refused below
        shape.insert(shape.begin(), Dim(1));
        made.push_back(make_node(program, ops.reshape, {x}, {{"shape", shape}}));
        return {made.back().get(), 0};
      };
      q = widen(q);
      k = widen(k);
      v = widen(v);
      ss.insert(ss.begin(), Dim(1));
    } else if (rk && rv && rk->unrepeated == rv->unrepeated) {
      auto unrepeat = [&](const Repeat& r) -> ir::Value {
        ir::Node* n = r.x5.node;
        if (n->op == &ops.reshape && type_of(n->inputs[0]).shape == r.unrepeated)
          return n->inputs[0];
        made.push_back(make_node(program, ops.reshape, {r.x5}, {{"shape", r.unrepeated}}));
        return {made.back().get(), 0};
      };
      k = unrepeat(*rk);
      v = unrepeat(*rv);
    }
    const Shape& qs = type_of(q).shape;
    const Shape& ks = type_of(k).shape;
    const Shape& vs = type_of(v).shape;
    if (qs.size() != 4 || ks.size() != 4 || vs.size() != 4) return false;
    for (size_t d = 0; d < 3; ++d)
      if (!same(qs[d], ss[d])) return false;
    for (size_t d = 0; d < 4; ++d)
      if (!same(ks[d], vs[d])) return false;
    if (!same(ks[0], qs[0]) || !same(ks[2], ss[3]) || !same(ks[3], qs[3])) return false;
    const Dim &hq = qs[1], &hkv = ks[1];
    const bool heads_fit =
        same(hq, hkv) || hkv == Dim(1) ||
        (hq.is_static() && hkv.is_static() && hkv.value() > 0 && hq.value() % hkv.value() == 0);
    if (!heads_fit || !std::isfinite(m.scale)) return false;

    std::vector<ir::Value> inputs{q, k, v};
    if (m.mask) inputs.push_back(*m.mask);
    auto fused = make_node(program, ops.attention, inputs,
                           {{"scale", m.scale},
                            {"causal", m.causal},
                            {"window", int64_t(0)},
                            {"has_mask", m.mask.has_value()},
                            {"has_kv_len", false}});
    ir::TensorType want = m.output->type();
    if (ss.size() != want.shape.size()) want.shape.insert(want.shape.begin(), Dim(1));
    if (!(fused->type() == want) || !device_takes(ctx, *fused)) return false;
    made.push_back(std::move(fused));
    if (!(want == m.output->type()))
      made.push_back(make_node(program, ops.reshape, {{made.back().get(), 0}},
                               {{"shape", m.output->type().shape}}));
  } catch (const Error&) {
    return false;  // a shape or dtype the op does not take
  }
  ir::Node* last = nullptr;
  for (auto& n : made) last = program.insert_before(m.output, std::move(n));
  program.replace_uses({m.output, 0}, {last, 0});
  for (auto it = m.chain.rbegin(); it != m.chain.rend(); ++it) program.erase(*it);
  return true;
}

}  // namespace

void fuse_attention(ir::Program& program, const PassContext& ctx) {
  const ir::OpRegistry& r = ir::OpRegistry::instance();
  const Ops ops{r.at("matmul"),
                r.at("softmax"),
                r.at("mul"),
                r.at("div"),
                r.at("add"),
                r.at("where"),
                r.at("constant"),
                r.at("transpose"),
                r.at("reshape"),
                r.at("broadcast_to"),
                r.at("scaled_dot_product_attention")};
  // One snapshot of the users: a rewrite only removes readers (its chain) and adds the fused
  // node as a reader of values the chain read already, so counts taken here never undercount.
  const ir::UseLists uses(program);
  auto only_reader = [&](const ir::Node* n, const ir::Node* reader) {
    const auto& u = uses.users(n);
    return u.size() == 1 && u[0] == reader && !is_program_output(program, n);
  };
  auto is_float_dtype = [](DType t) {
    return t == DType::f32 || t == DType::f16 || t == DType::bf16;
  };

  std::vector<ir::Node*> softmaxes;
  for (const auto& n : program.nodes())
    if (n->op == &ops.softmax) softmaxes.push_back(n.get());

  for (ir::Node* sm : softmaxes) {
    const ir::TensorType& st = sm->type();
    const int64_t axis = sm->attrs.get<int64_t>("axis");
    const size_t rank = st.shape.size();
    if ((rank != 3 && rank != 4) || !is_float_dtype(st.dtype) ||
        (axis != -1 && axis != int64_t(rank) - 1))
      continue;
    const auto& sm_users = uses.users(sm);
    if (sm_users.size() != 1 || is_program_output(program, sm)) continue;
    ir::Node* out = sm_users[0];
    if (out->op != &ops.matmul || out->inputs.size() != 2 ||
        !(out->inputs[0] == ir::Value{sm, 0}) || out->inputs[1].node == sm ||
        out->attrs.get<bool>("transpose_a"))
      continue;

    Match m;
    m.output = out;

    // Scale the scores, down to matmul(q, kᵀ); each step read only by the one above it.
    auto scores_below = [&](ir::Value x, ir::Node* reader, double& scale,
                            std::vector<ir::Node*>& steps) -> ir::Node* {
      for (;;) {
        if (x.output != 0 || !only_reader(x.node, reader) || !(x.node->type() == st))
          return nullptr;
        if (x.node->op == &ops.matmul) return x.node->inputs.size() == 2 ? x.node : nullptr;
        auto inner = peel_scale(ops, x, scale);
        if (!inner) return nullptr;
        steps.push_back(x.node);
        reader = x.node;
        x = *inner;
      }
    };

    ir::Value x = sm->inputs[0];
    ir::Node* mm = nullptr;
    std::vector<ir::Node*> steps;
    double scale = 1.0;
    if (x.node->op == &ops.add && only_reader(x.node, sm) && x.node->type() == st) {
      ir::Node* add = x.node;
      for (int side = 0; side < 2 && !mm; ++side) {
        steps.clear();
        scale = 1.0;
        ir::Value mask = add->inputs[size_t(1 - side)];
        const ir::TensorType& mt = type_of(mask);
        if (mt.dtype != st.dtype || mt.shape.size() > 4) continue;
        mm = scores_below(add->inputs[size_t(side)], add, scale, steps);
        if (mm) {
          for (ir::Node* s : steps)
            if (mask.node == s || mask.node == mm) mm = nullptr;
          if (mm) m.mask = mask;
        }
      }
      if (mm) steps.insert(steps.begin(), add);
    } else if (x.node->op == &ops.where && only_reader(x.node, sm) && x.node->type() == st) {
      ir::Node* w = x.node;
      std::optional<double> fill = scalar_constant(ops, w->inputs[2]);
      const ir::TensorType& ct = type_of(w->inputs[0]);
      if (fill && std::isinf(*fill) && *fill < 0 && ct.dtype == DType::boolean &&
          ct.shape.size() <= 4) {
        mm = scores_below(w->inputs[1], w, scale, steps);
        if (mm) {
          m.mask = w->inputs[0];
          steps.insert(steps.begin(), w);
        }
      }
    } else {
      mm = scores_below(x, sm, scale, steps);
    }
    if (!mm) continue;
    if (m.mask && is_causal_constant(ops, *m.mask, st.shape)) {
      m.mask.reset();  // the constant goes with dead_code
      m.causal = true;
    }

    // q from matmul's a, k from its b read as kᵀ (scalar muls on either are part of the
    // scale), v from the second matmul's b.
    auto flag = [rank](const ir::Node* n, const char* name) {
      return n->attrs.get<bool>(name) ? swap_last(rank) : identity(rank);
    };
    m.q = peel(ops, mm->inputs[0], flag(mm, "transpose_a"), identity(rank), &scale);
    Operand kt = peel(ops, mm->inputs[1], flag(mm, "transpose_b"), swap_last(rank), &scale);
    m.k = {kt.base, compose(kt.perm, swap_last(rank))};
    m.v = peel(ops, out->inputs[1], flag(out, "transpose_b"), identity(rank), nullptr);
    m.scale = scale;
    m.scores = mm;
    m.chain = {mm};
    for (auto it = steps.rbegin(); it != steps.rend(); ++it) m.chain.push_back(*it);
    m.chain.push_back(sm);
    m.chain.push_back(out);
    rewrite(program, ctx, ops, m);
  }
}

}  // namespace loom::passes
