// CPU reductions. The input is viewed as alternating groups of kept and reduced dims
// (adjacent dims of one kind merged, dims of extent 1 dropped); the common case of one
// reduced group [outer, reduced, inner] has its own loops (splitting the reduced group
// across threads when there are few outputs), anything else walks the reduced groups per
// output element.
#include <algorithm>
#include <array>
#include <cmath>
#include <limits>
#include <memory>
#include <span>
#include <type_traits>
#include <vector>

#include "backends/cpu/cpu_kernels.h"
#include "backends/cpu/dispatch.h"
#include "backends/cpu/simd.h"
#include "ops/reduce_params.h"

namespace loom::cpu {
namespace {

// Accumulators: sums of floats in double, of integers in int64 (stored back modulo the
// width of the dtype); max and min in the compute type, NaN propagating.
template <class T>
struct SumOp {
  using Acc = std::conditional_t<std::is_integral_v<compute_t<T>>, int64_t, double>;
  static Acc init() { return 0; }
  static void add(Acc& acc, compute_t<T> v) {
    if constexpr (std::is_integral_v<Acc>) {
      acc = Acc(uint64_t(acc) + uint64_t(int64_t(v)));  // wraps instead of overflowing
    } else {
      acc += Acc(v);
    }
  }
  static void combine(Acc& acc, Acc partial) {
    if constexpr (std::is_integral_v<Acc>)
      acc = Acc(uint64_t(acc) + uint64_t(partial));
    else
      acc += partial;
  }
  static Acc finish(Acc acc, int64_t) { return acc; }
};

template <class T>
struct MeanOp : SumOp<T> {
  static double finish(double acc, int64_t count) { return acc / double(count); }
};

template <class T, bool is_max>
struct ExtremeOp {
  using Acc = compute_t<T>;
  static Acc init() {
    if constexpr (std::is_floating_point_v<Acc>)
      return is_max ? -std::numeric_limits<Acc>::infinity() : std::numeric_limits<Acc>::infinity();
    else
      return is_max ? std::numeric_limits<Acc>::lowest() : std::numeric_limits<Acc>::max();
  }
  static void add(Acc& acc, Acc v) {
    bool better = is_max ? v > acc : v < acc;
    if constexpr (std::is_floating_point_v<Acc>) better = better || std::isnan(v);
    if (better && !is_nan(acc)) acc = v;
  }
  // A later part's extreme replaces an earlier one only when strictly better (or NaN), so
  // the first of equal values wins as in one pass.
  static void combine(Acc& acc, Acc partial) { add(acc, partial); }
  static Acc finish(Acc acc, int64_t) { return acc; }
  static bool is_nan(Acc v) {
    if constexpr (std::is_floating_point_v<Acc>)
      return std::isnan(v);
    else
      return false;
  }
};

constexpr int kMaxGroups = 32;

struct Group {
  int64_t extent = 1;
  int64_t stride = 1;  // elements of the input between neighbours
};

// The kept and reduced groups of a reduction, outermost first.
struct ReduceLayout {
  std::array<Group, kMaxGroups> kept{}, reduced{};
  int kept_count = 0, reduced_count = 0;
  int64_t reduced_numel = 1;
};

ReduceLayout make_layout(const Extents& shape, std::span<const bool> is_reduced) {
  // Merge from the innermost dim outwards so that strides are known as we go.
  ReduceLayout out;
  std::array<Group, kMaxGroups> groups{};
  std::array<bool, kMaxGroups> group_reduced{};
  int count = 0;
  int64_t stride = 1;
  for (int d = int(shape.size()) - 1; d >= 0; --d) {
    int64_t extent = shape[size_t(d)];
    if (extent == 1) continue;
    bool reduced = is_reduced[size_t(d)];
    if (count > 0 && group_reduced[size_t(count - 1)] == reduced) {
      groups[size_t(count - 1)].extent *= extent;
    } else {
      if (count == kMaxGroups)
        fail(ErrorKind::unsupported, "reduction over more than 32 alternating groups of axes");
      groups[size_t(count)] = {extent, stride};
      group_reduced[size_t(count)] = reduced;
      ++count;
    }
    stride *= extent;
  }
  for (int g = count - 1; g >= 0; --g) {
    if (group_reduced[size_t(g)]) {
      out.reduced[size_t(out.reduced_count++)] = groups[size_t(g)];
      out.reduced_numel *= groups[size_t(g)].extent;
    } else {
      out.kept[size_t(out.kept_count++)] = groups[size_t(g)];
    }
  }
  return out;
}

// A contiguous f32 sum (or mean) of n elements takes sum_f32: 16 double lanes, vectorised
// (simd.h), instead of one dependent chain of double additions.
template <class T, class Op>
constexpr bool kLaneSum = std::is_same_v<T, float>&& std::is_same_v<typename Op::Acc, double> &&
                          (std::is_same_v<Op, SumOp<T>> || std::is_same_v<Op, MeanOp<T>>);

// Elements of inner output that one task accumulates side by side.
constexpr int64_t kInnerChunk = 64;

// With few outputs (a reduction over leading axes: mean(x[65536, 8], axes=[0])) one task
// per output chunk leaves most threads idle, so the reduced axis is split into parts as
// well: each part accumulates its rows, and the partials are combined in part order. The
// number of parts depends on the shape only, never on the thread count, so results are
// the same on every machine and every run.
constexpr int64_t kSplitBelowTasks = 32;  // tasks that already keep a machine busy
constexpr int64_t kSplitGrain = 8192;     // elements per part, at least
constexpr int64_t kMaxParts = 64;

int64_t split_parts(int64_t tasks, int64_t r, int64_t task_width) {
  if (tasks >= kSplitBelowTasks || r < 2) return 1;
  return std::clamp<int64_t>(r * task_width / kSplitGrain, 1, std::min(r, kMaxParts));
}

// Per-thread scratch for the partials; it grows to the largest split and is reused, so
// steady-state runs do not allocate.
// (Not a std::vector: the max of bool accumulates in bool.)
template <class Acc>
Acc* partial_scratch(size_t count) {
  thread_local std::unique_ptr<Acc[]> buffer;
  thread_local size_t capacity = 0;
  if (capacity < count) {
    buffer = std::make_unique<Acc[]>(count);
    capacity = count;
  }
  return buffer.get();
}

template <class T, class Op>
void reduce_split(const T* x, T* y, int64_t outer, int64_t r, int64_t inner, int64_t parts) {
  using Acc = typename Op::Acc;
  const int64_t chunks = (inner + kInnerChunk - 1) / kInnerChunk;
  const int64_t tasks = outer * chunks;
  Acc* partials = partial_scratch<Acc>(size_t(tasks * parts * kInnerChunk));
  parallel_for(tasks * parts, 1, [&](int64_t item) {
    const int64_t task = item / parts, part = item % parts;
    const int64_t o = task / chunks;
    const int64_t i0 = (task % chunks) * kInnerChunk;
    const int64_t len = std::min(kInnerChunk, inner - i0);
    const int64_t k0 = r * part / parts, k1 = r * (part + 1) / parts;
    Acc* acc = partials + item * kInnerChunk;
    if constexpr (kLaneSum<T, Op>) {
      if (inner == 1) {
        acc[0] = sum_f32(x + o * r + k0, k1 - k0);
        return;
      }
    }
    for (int64_t j = 0; j < len; ++j) acc[j] = Op::init();
    for (int64_t k = k0; k < k1; ++k) {
      const T* p = x + (o * r + k) * inner + i0;
      for (int64_t j = 0; j < len; ++j) Op::add(acc[j], load(p + j));
    }
  });
  for (int64_t task = 0; task < tasks; ++task) {
    const int64_t o = task / chunks;
    const int64_t i0 = (task % chunks) * kInnerChunk;
    const int64_t len = std::min(kInnerChunk, inner - i0);
    const Acc* first = partials + task * parts * kInnerChunk;
    for (int64_t j = 0; j < len; ++j) {
      Acc acc = first[j];
      for (int64_t part = 1; part < parts; ++part) Op::combine(acc, first[part * kInnerChunk + j]);
      store(y + o * inner + i0 + j, Op::finish(acc, r));
    }
  }
}

template <class T, class Op>
void reduce_outer_inner(const T* x, T* y, int64_t outer, int64_t r, int64_t inner) {
  using Acc = typename Op::Acc;
  const int64_t tasks = outer * ((inner + kInnerChunk - 1) / kInnerChunk);
  const int64_t parts = split_parts(tasks, r, std::min(inner, kInnerChunk));
  if (parts > 1) {
    reduce_split<T, Op>(x, y, outer, r, inner, parts);
    return;
  }
  if (inner == 1) {
    parallel_for(outer, std::max<int64_t>(1, kParallelGrain / std::max<int64_t>(r, 1)),
                 [&](int64_t o) {
                   Acc acc = Op::init();
                   const T* p = x + o * r;
                   if constexpr (kLaneSum<T, Op>)
                     acc = sum_f32(p, r);
                   else
                     for (int64_t i = 0; i < r; ++i) Op::add(acc, load(p + i));
                   store(y + o, Op::finish(acc, r));
                 });
    return;
  }
  const int64_t chunks = (inner + kInnerChunk - 1) / kInnerChunk;
  const int64_t grain =
      std::max<int64_t>(1, kParallelGrain / std::max<int64_t>(r * kInnerChunk, 1));
  parallel_for(outer * chunks, grain, [&](int64_t task) {
    const int64_t o = task / chunks;
    const int64_t i0 = (task % chunks) * kInnerChunk;
    const int64_t len = std::min(kInnerChunk, inner - i0);
    std::array<Acc, kInnerChunk> acc;
    for (int64_t j = 0; j < len; ++j) acc[size_t(j)] = Op::init();
    for (int64_t k = 0; k < r; ++k) {
      const T* p = x + (o * r + k) * inner + i0;
      for (int64_t j = 0; j < len; ++j) Op::add(acc[size_t(j)], load(p + j));
    }
    for (int64_t j = 0; j < len; ++j) store(y + o * inner + i0 + j, Op::finish(acc[size_t(j)], r));
  });
}

// Any layout: each output element walks its reduced groups with an odometer.
template <class T, class Op>
void reduce_general(const T* x, T* y, const ReduceLayout& l, int64_t out_numel) {
  using Acc = typename Op::Acc;
  const Group& last = l.reduced[size_t(l.reduced_count - 1)];
  const int64_t grain =
      std::max<int64_t>(1, kParallelGrain / std::max<int64_t>(l.reduced_numel, 1));
  parallel_for(out_numel, grain, [&](int64_t out_index) {
    int64_t base = 0;
    int64_t flat = out_index;
    for (int g = l.kept_count - 1; g >= 0; --g) {
      const Group& kg = l.kept[size_t(g)];
      base += (flat % kg.extent) * kg.stride;
      flat /= kg.extent;
    }
    Acc acc = Op::init();
    std::array<int64_t, kMaxGroups> coord{};
    const int outer_groups = l.reduced_count - 1;
    bool done = l.reduced_numel == 0;
    while (!done) {
      int64_t offset = base;
      for (int g = 0; g < outer_groups; ++g)
        offset += coord[size_t(g)] * l.reduced[size_t(g)].stride;
      for (int64_t i = 0; i < last.extent; ++i) Op::add(acc, load(x + offset + i * last.stride));
      int g = outer_groups - 1;
      for (; g >= 0; --g) {
        if (++coord[size_t(g)] < l.reduced[size_t(g)].extent) break;
        coord[size_t(g)] = 0;
      }
      done = g < 0;
    }
    store(y + out_index, Op::finish(acc, l.reduced_numel));
  });
}

// Which axes of the input a node reduces (attr axes, empty meaning all).
std::array<bool, 64> reduced_axes(const ir::Node& node, int rank) {
  if (rank > 64) fail(ErrorKind::unsupported, "reductions support rank <= 64");
  std::array<bool, 64> reduced{};
  const auto& axes = ops::ReduceParams::decode(node).axes;
  for (int d = 0; d < rank; ++d) reduced[size_t(d)] = axes.empty();
  for (int64_t a : axes) reduced[size_t(normalize_axis(a, rank, node.op_name().c_str()))] = true;
  return reduced;
}

template <template <class> class Op>
void run_reduction(const TensorView& x, TensorView& y, const ir::Node& node) {
  if (y.numel() == 0) return;
  auto reduced = reduced_axes(node, x.rank());
  ReduceLayout l = make_layout(x.shape, std::span<const bool>(reduced.data(), size_t(x.rank())));
  auto body = [&](auto tag) {
    using T = decltype(tag);
    const T* xp = x.as<const T>();
    T* yp = y.as<T>();
    if (l.reduced_count == 0) {  // only dims of extent 1 are reduced: one element each
      parallel_for(y.numel(), kParallelGrain, [&](int64_t i) {
        auto acc = Op<T>::init();
        Op<T>::add(acc, load(xp + i));
        store(yp + i, Op<T>::finish(acc, 1));
      });
    } else if (l.reduced_count == 1) {
      const Group& rg = l.reduced[0];
      const int64_t inner = rg.stride;
      reduce_outer_inner<T, Op<T>>(xp, yp, y.numel() / inner, rg.extent, inner);
    } else {
      reduce_general<T, Op<T>>(xp, yp, l, y.numel());
    }
  };
  if constexpr (std::is_same_v<Op<float>, MeanOp<float>>)
    dispatch_float(x.dtype, body);
  else
    dispatch_all(x.dtype, body);
}

template <class T>
using MaxOp = ExtremeOp<T, true>;
template <class T>
using MinOp = ExtremeOp<T, false>;

template <template <class> class Op>
Kernel reduction_kernel(const char* name) {
  return Kernel{name,
                [](KernelContext&, const ir::Node& node, std::span<const TensorView> in,
                   std::span<TensorView> out) { run_reduction<Op>(in[0], out[0], node); },
                nullptr};
}

// argmax along one axis: [outer, r, inner]; the first maximum wins, and a NaN counts as
// the maximum (as in NumPy and PyTorch).
void run_argmax(KernelContext&, const ir::Node& node, std::span<const TensorView> in,
                std::span<TensorView> out) {
  const TensorView& x = in[0];
  int64_t* y = out[0].as<int64_t>();
  if (out[0].numel() == 0) return;
  const int axis = normalize_axis(ops::ArgmaxParams::decode(node).axis, x.rank(), "argmax");
  int64_t outer = 1, inner = 1;
  for (int d = 0; d < axis; ++d) outer *= x.shape[size_t(d)];
  for (int d = axis + 1; d < x.rank(); ++d) inner *= x.shape[size_t(d)];
  const int64_t r = x.shape[size_t(axis)];
  dispatch_all(x.dtype, [&](auto tag) {
    using T = decltype(tag);
    const T* xp = x.as<const T>();
    parallel_for(outer * inner, std::max<int64_t>(1, kParallelGrain / std::max<int64_t>(r, 1)),
                 [&](int64_t task) {
                   const int64_t o = task / inner, i = task % inner;
                   const T* p = xp + o * r * inner + i;
                   auto best = load(p);
                   int64_t best_index = 0;
                   for (int64_t k = 1; k < r; ++k) {
                     auto v = load(p + k * inner);
                     bool better = v > best;
                     if constexpr (std::is_floating_point_v<decltype(v)>)
                       better =
                           (better && !std::isnan(best)) || (std::isnan(v) && !std::isnan(best));
                     if (better) {
                       best = v;
                       best_index = k;
                     }
                   }
                   y[task] = best_index;
                 });
  });
}

}  // namespace

void register_reduce_kernels(Backend& b) {
  b.add_kernel("sum", reduction_kernel<SumOp>("cpu.sum"));
  b.add_kernel("mean", reduction_kernel<MeanOp>("cpu.mean"));
  b.add_kernel("max", reduction_kernel<MaxOp>("cpu.max"));
  b.add_kernel("min", reduction_kernel<MinOp>("cpu.min"));
  b.add_kernel("argmax", Kernel{"cpu.argmax", run_argmax, nullptr});
}

}  // namespace loom::cpu
