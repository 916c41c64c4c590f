// The op functions. Each adds one node to the graph of its inputs; shapes and dtypes are
// inferred and checked here, so a mismatch throws at the line that caused it.
// Op names (in quotes) are the registry names the dump and the backends use; each op's
// inputs, attributes and defaults are declared in its schema (loom::op_schema(name), or
// `loom ops NAME`), and the defaults below are the schema's (loom::op_defaults).
#pragma once

#include <optional>
#include <vector>

#include "loom/graph.h"
#include "loom/op_schema.h"

namespace loom {

// ---- elementwise (numpy broadcasting; both operands of one dtype) -------------------
Tensor add(const Tensor& a, const Tensor& b);                             // "add"
Tensor sub(const Tensor& a, const Tensor& b);                             // "sub"
Tensor mul(const Tensor& a, const Tensor& b);                             // "mul"
Tensor div(const Tensor& a, const Tensor& b);                             // "div"
Tensor pow(const Tensor& a, const Tensor& b);                             // "pow"
Tensor maximum(const Tensor& a, const Tensor& b);                         // "maximum"
Tensor minimum(const Tensor& a, const Tensor& b);                         // "minimum"
Tensor equal(const Tensor& a, const Tensor& b);                           // "equal"   -> bool
Tensor less(const Tensor& a, const Tensor& b);                            // "less"    -> bool
Tensor greater(const Tensor& a, const Tensor& b);                         // "greater" -> bool
Tensor where(const Tensor& condition, const Tensor& a, const Tensor& b);  // "where"

Tensor neg(const Tensor& x);      // "neg"
Tensor abs(const Tensor& x);      // "abs"
Tensor exp(const Tensor& x);      // "exp"
Tensor log(const Tensor& x);      // "log"
Tensor sqrt(const Tensor& x);     // "sqrt"
Tensor rsqrt(const Tensor& x);    // "rsqrt"
Tensor sin(const Tensor& x);      // "sin"
Tensor cos(const Tensor& x);      // "cos"
Tensor tanh(const Tensor& x);     // "tanh"
Tensor sigmoid(const Tensor& x);  // "sigmoid"
Tensor silu(const Tensor& x);     // "silu"
Tensor relu(const Tensor& x);     // "relu"
enum class GeluApproximation { none, tanh };
Tensor gelu(const Tensor& x, GeluApproximation approximation = GeluApproximation::none);
// "gelu" (erf) or "gelu_tanh"
Tensor cast(const Tensor& x, DType dtype);  // "cast", attr dtype

// Scalars are added as constants of the tensor's dtype.
Tensor operator+(const Tensor& a, const Tensor& b);
Tensor operator-(const Tensor& a, const Tensor& b);
Tensor operator*(const Tensor& a, const Tensor& b);
Tensor operator/(const Tensor& a, const Tensor& b);
Tensor operator-(const Tensor& x);
Tensor operator+(const Tensor& a, double b);
Tensor operator-(const Tensor& a, double b);
Tensor operator*(const Tensor& a, double b);
Tensor operator/(const Tensor& a, double b);
Tensor operator+(double a, const Tensor& b);
Tensor operator-(double a, const Tensor& b);
Tensor operator*(double a, const Tensor& b);
Tensor operator/(double a, const Tensor& b);

// ---- matmul -----------------------------------------------------------------------
// a [..., M, K] x b [..., K, N] -> [..., M, N]; batch dims broadcast; rank >= 2.
// "matmul", attrs transpose_a, transpose_b (bool): the last two dims of that operand swap.
Tensor matmul(const Tensor& a, const Tensor& b, bool transpose_a = false, bool transpose_b = false);

// ---- reductions ("sum", "mean", "max", "min": attrs axes [int...], keepdims) ------
// Empty axes means every axis.
Tensor sum(const Tensor& x, std::vector<int64_t> axes = {}, bool keepdims = false);
Tensor mean(const Tensor& x, std::vector<int64_t> axes = {}, bool keepdims = false);
Tensor max(const Tensor& x, std::vector<int64_t> axes = {}, bool keepdims = false);
Tensor min(const Tensor& x, std::vector<int64_t> axes = {}, bool keepdims = false);
// "argmax", attrs axis, keepdims -> i64; first index of the maximum.
Tensor argmax(const Tensor& x, int64_t axis = op_defaults::argmax_axis, bool keepdims = false);

// ---- normalisation ----------------------------------------------------------------
Tensor softmax(const Tensor& x, int64_t axis = op_defaults::softmax_axis);      // "softmax"
Tensor log_softmax(const Tensor& x, int64_t axis = op_defaults::softmax_axis);  // "log_softmax"
// Over the last axis. "layer_norm": inputs x, weight?, bias? (named optional inputs), attr eps
// (has_weight and has_bias follow from the inputs).
Tensor layer_norm(const Tensor& x, std::optional<Tensor> weight = std::nullopt,
                  std::optional<Tensor> bias = std::nullopt,
                  double eps = op_defaults::layer_norm_eps);
// Over the last axis. "rms_norm": inputs x, weight?, attr eps.
Tensor rms_norm(const Tensor& x, std::optional<Tensor> weight = std::nullopt,
                double eps = op_defaults::rms_norm_eps);

// ---- shape and data movement --------------------------------------------------------
// "reshape", attr shape (Shape; one dim may be -1; symbols allowed).
Tensor reshape(const Tensor& x, Shape shape);
// "transpose", attr perm. permute is the same op.
Tensor transpose(const Tensor& x, std::vector<int64_t> perm);
Tensor permute(const Tensor& x, std::vector<int64_t> perm);
// Swaps the last two axes.
Tensor transpose(const Tensor& x);
Tensor broadcast_to(const Tensor& x, Shape shape);           // "broadcast_to", attr shape
Tensor concat(const std::vector<Tensor>& xs, int64_t axis);  // "concat", attr axis
// "split", attrs sizes, axis: one output per size.
std::vector<Tensor> split(const Tensor& x, std::vector<int64_t> sizes, int64_t axis);
// Into `parts` equal pieces.
std::vector<Tensor> split(const Tensor& x, int64_t parts, int64_t axis);
// "slice", attrs axes, starts, stops, steps (python semantics, negative and clamped).
Tensor slice(const Tensor& x, std::vector<int64_t> axes, std::vector<int64_t> starts,
             std::vector<int64_t> stops, std::vector<int64_t> steps = {});
// "dynamic_slice": inputs x, starts (i32/i64, one per axis of `axes`), attrs axes, sizes.
// Starts are read at run time and clamped so the window stays inside x.
Tensor slice(const Tensor& x, const Tensor& starts, std::vector<int64_t> axes,
             std::vector<int64_t> sizes);
// "slice_update": inputs x, update, starts (i32/i64, one per axis of x); x with the window
// at `starts` replaced by update. Starts are read at run time and clamped to fit.
Tensor slice_update(const Tensor& x, const Tensor& update, const Tensor& starts);
Tensor slice_update(const Tensor& x, const Tensor& update, std::vector<int64_t> starts);
// "gather": table [N, ...] and integer indices [...] -> indices.shape + table.shape[1:]
// along attr axis (default 0). Out-of-range indices give zeros.
Tensor gather(const Tensor& table, const Tensor& indices, int64_t axis = op_defaults::gather_axis);
// "arange": attrs start, stop, step (double), dtype.
Tensor arange(Graph& g, double start, double stop, double step = op_defaults::arange_step,
              DType dtype = op_defaults::arange_dtype);

// "rope": rotary position embedding of x [..., S, D]; position of row s is offset + s,
// offset a run-time integer scalar tensor (shape [] or [1]).
// attrs base (double), interleaved (bool: pairs (2i, 2i+1); else halves (i, i + D/2)),
// dims (rotate the first `dims` features; 0 means all), scale (position multiplier).
struct RopeOptions {
  double base = op_defaults::rope_base;
  bool interleaved = op_defaults::rope_interleaved;
  int64_t dims = op_defaults::rope_dims;
  double scale = op_defaults::rope_scale;
};
Tensor rope(const Tensor& x, const Tensor& offset, RopeOptions options = {});

}  // namespace loom
