// Fourier transforms (fft, ifft, rfft, irfft over one to three axes, numpy.fft's norms) and
// the framing ops the STFT is built on (frames, overlap_add). The STFT and log-mel helpers,
// which compose these, are in spectral.cpp.
#include <algorithm>

#include "ir/op_registry.h"
#include "loom/fft.h"
#include "ops/op_families.h"
#include "ops/schema_util.h"
#include "ops/shape_inference.h"

namespace loom {

const char* fft_norm_name(FftNorm norm) {
  switch (norm) {
    case FftNorm::ortho:
      return "ortho";
    case FftNorm::forward:
      return "forward";
    default:
      return "backward";
  }
}

namespace {

Tensor transform(const char* op, const Tensor& x, std::vector<int64_t> axes, FftNorm norm,
                 Attributes extra = {}) {
  extra.set("axes", std::move(axes));
  extra.set("norm", std::string(fft_norm_name(norm)));
  return graph_of(x).add_node1(op, {x}, std::move(extra));
}

}  // namespace

Tensor fft(const Tensor& x, std::vector<int64_t> axes, FftNorm norm) {
  return transform("fft", x, std::move(axes), norm);
}
Tensor ifft(const Tensor& x, std::vector<int64_t> axes, FftNorm norm) {
  return transform("ifft", x, std::move(axes), norm);
}
Tensor rfft(const Tensor& x, std::vector<int64_t> axes, FftNorm norm) {
  return transform("rfft", x, std::move(axes), norm);
}
Tensor irfft(const Tensor& x, int64_t n, std::vector<int64_t> axes, FftNorm norm) {
  return transform("irfft", x, std::move(axes), norm, Attributes{{"n", n}});
}

Tensor frames(const Tensor& x, int64_t frame_length, int64_t hop, int64_t pad,
              const std::string& pad_mode) {
  return graph_of(x).add_node1(
      "frames", {x},
      Attributes{
          {"frame_length", frame_length}, {"hop", hop}, {"pad", pad}, {"pad_mode", pad_mode}});
}

Tensor windowed_frames(const Tensor& x, int64_t frame_length, int64_t hop, int64_t pad,
                       const std::string& pad_mode, const Tensor& window) {
  return graph_of(x).add_node1(
      "frames", {x, window},
      Attributes{
          {"frame_length", frame_length}, {"hop", hop}, {"pad", pad}, {"pad_mode", pad_mode}});
}

Tensor overlap_add(const Tensor& frames, int64_t hop) {
  return graph_of(frames).add_node1("overlap_add", {frames}, Attributes{{"hop", hop}});
}

namespace ops {
namespace {

using ir::InferContext;
using ir::TensorType;

// The transformed axes, normalised, in the given order (the real axis is the last).
std::vector<int> transform_axes(const InferContext& ctx) {
  const auto& axes = ctx.attrs.get<std::vector<int64_t>>("axes");
  const int rank = int(ctx.input(0).shape.size());
  if (axes.empty() || axes.size() > 3)
    ctx.fail(ErrorKind::value, "needs one, two or three axes, got " + std::to_string(axes.size()));
  normalize_axes(ctx, axes, rank, false);  // checks range and repeats
  std::vector<int> out;
  for (int64_t a : axes) {
    out.push_back(int(a < 0 ? a + rank : a));
    const Dim& d = ctx.input(0).shape[size_t(out.back())];
    if (d.is_static() && d.value() < 1)
      ctx.fail(ErrorKind::shape,
               "cannot transform axis " + std::to_string(out.back()) + " of length 0");
  }
  return out;
}

std::vector<TensorType> infer_fft(const InferContext& ctx) {
  transform_axes(ctx);
  return {ctx.input(0)};
}

std::vector<TensorType> infer_rfft(const InferContext& ctx) {
  const int axis = transform_axes(ctx).back();
  Shape shape = ctx.input(0).shape;
  Dim& d = shape[size_t(axis)];
  d = d.is_static() ? Dim(d.value() / 2 + 1) : Dim::unknown();
  return {{DType::c64, shape}};
}

std::vector<TensorType> infer_irfft(const InferContext& ctx) {
  const int axis = transform_axes(ctx).back();
  const int64_t n = ctx.attrs.get<int64_t>("n");
  Shape shape = ctx.input(0).shape;
  Dim& d = shape[size_t(axis)];
  if (n > (int64_t(1) << 40))
    ctx.fail(ErrorKind::value, "n " + std::to_string(n) + " is too large");
  if (n > 0) {
    d = Dim(n);
  } else if (d.is_static()) {
    if (d.value() < 2)
      ctx.fail(ErrorKind::shape,
               "needs n, or at least 2 frequencies along axis " + std::to_string(axis));
    d = Dim(2 * (d.value() - 1));
  } else {
    d = Dim::unknown();
  }
  return {{DType::f32, shape}};
}

std::vector<TensorType> infer_frames(const InferContext& ctx) {
  const TensorType& x = ctx.input(0);
  if (x.shape.empty()) ctx.fail(ErrorKind::shape, "x needs rank >= 1");
  const int64_t length = ctx.attrs.get<int64_t>("frame_length");
  const int64_t hop = ctx.attrs.get<int64_t>("hop");
  const int64_t pad = ctx.attrs.get<int64_t>("pad");
  const bool reflect = ctx.attrs.get<std::string>("pad_mode") == "reflect";
  // Keeps T + 2 pad far from overflowing int64.
  if (pad > (int64_t(1) << 40))
    ctx.fail(ErrorKind::value, "pad " + std::to_string(pad) + " is too large");
  Shape shape(x.shape.begin(), x.shape.end() - 1);
  const Dim& t = x.shape.back();
  if (t.is_static()) {
    if (reflect && pad > 0 && pad >= t.value())
      ctx.fail(ErrorKind::shape, "reflect padding needs pad (" + std::to_string(pad) +
                                     ") < the signal's length (" + std::to_string(t.value()) + ")");
    const int64_t padded = t.value() + 2 * pad;
    if (padded < length)
      ctx.fail(ErrorKind::shape, "the padded signal (" + std::to_string(padded) +
                                     " samples) is shorter than one frame (" +
                                     std::to_string(length) + ")");
    shape.push_back(Dim(1 + (padded - length) / hop));
  } else {
    shape.push_back(Dim::unknown());
  }
  shape.push_back(Dim(length));
  if (ctx.inputs.size() == 2) {
    const TensorType& w = ctx.input(1);
    if (x.dtype != DType::f32 || w.dtype != DType::f32)
      ctx.fail(ErrorKind::dtype, "a window needs an f32 signal and an f32 window");
    if (w.shape.size() != 1 || (w.shape[0].is_static() && w.shape[0].value() != length))
      ctx.fail(ErrorKind::shape, "the window must have shape [" + std::to_string(length) + "]");
  }
  return {{x.dtype, shape}};
}

std::vector<TensorType> infer_overlap_add(const InferContext& ctx) {
  const TensorType& x = ctx.input(0);
  if (x.shape.size() < 2) ctx.fail(ErrorKind::shape, "frames need rank >= 2 ([..., F, L])");
  const int64_t hop = ctx.attrs.get<int64_t>("hop");
  const Dim& f = x.shape[x.shape.size() - 2];
  const Dim& l = x.shape.back();
  Shape shape(x.shape.begin(), x.shape.end() - 2);
  if (f.is_static() && l.is_static()) {
    if (f.value() < 1) ctx.fail(ErrorKind::shape, "needs at least one frame");
    shape.push_back(Dim((f.value() - 1) * hop + l.value()));
  } else {
    shape.push_back(Dim::unknown());
  }
  return {{x.dtype, shape}};
}

AttrSpec axes_attr() {
  return attr("axes", AttrType::int_list, std::vector<int64_t>{-1},
              "the transformed axes (one to three, distinct); rfft/irfft's real axis is the last");
}

AttrSpec norm_attr() {
  AttrSpec spec = attr("norm", AttrType::string, std::string("backward"),
                       "backward (inverse scales by 1/n), ortho (1/sqrt(n) both ways) or "
                       "forward (forward scales by 1/n)");
  spec.allowed = {std::string("backward"), std::string("ortho"), std::string("forward")};
  return spec;
}

AttrSpec positive(AttrSpec spec) { return at_least(std::move(spec), 1); }

}  // namespace

void register_fft_ops(ir::OpRegistry& r) {
  const std::vector<DType> c64{DType::c64}, f32{DType::f32};
  r.add({.name = "fft",
         .doc = "Discrete Fourier transform over the axes (numpy.fft.fftn).",
         .inputs = {input("x", "complex signal", c64)},
         .attrs = {axes_attr(), norm_attr()},
         .outputs = {output("y", "c64, x's shape")},
         .infer = infer_fft});
  r.add({.name = "ifft",
         .doc = "Inverse discrete Fourier transform over the axes (numpy.fft.ifftn).",
         .inputs = {input("x", "complex spectrum", c64)},
         .attrs = {axes_attr(), norm_attr()},
         .outputs = {output("y", "c64, x's shape")},
         .infer = infer_fft});
  r.add({.name = "rfft",
         .doc = "Fourier transform of a real signal, the Hermitian half (numpy.fft.rfftn).",
         .inputs = {input("x", "real signal", f32)},
         .attrs = {axes_attr(), norm_attr()},
         .outputs = {output("y", "c64; the last axis keeps n/2 + 1 frequencies")},
         .infer = infer_rfft});
  r.add({.name = "irfft",
         .doc = "Real signal of a Hermitian half spectrum (numpy.fft.irfftn).",
         .inputs = {input("x", "half spectrum", c64)},
         .attrs = {axes_attr(), norm_attr(),
                   at_least(attr("n", AttrType::integer, int64_t(0),
                                 "the real length along the last axis (0: 2 * (m - 1))"),
                            0)},
         .outputs = {output("y", "f32; the last axis has n samples")},
         .infer = infer_irfft});
  AttrSpec pad_mode = attr("pad_mode", AttrType::string, std::string("constant"),
                           "constant (zeros) or reflect (mirrored, edge not repeated)");
  pad_mode.allowed = {std::string("constant"), std::string("reflect")};
  r.add({.name = "frames",
         .doc = "Overlapping windows of the last axis, [..., T] -> [..., F, frame_length], "
                "each times the window if one is given.",
         .inputs = {input("x", "signal", {DType::f32, DType::c64}),
                    optional_input("window", "f32 [frame_length] multiplying every frame (f32 x)",
                                   {DType::f32})},
         .attrs = {positive(required_attr("frame_length", AttrType::integer, "samples a frame")),
                   positive(required_attr("hop", AttrType::integer, "samples between frames")),
                   at_least(attr("pad", AttrType::integer, int64_t(0),
                                 "samples of padding on each side"),
                            0),
                   pad_mode},
         .outputs = {output("y",
                            "x's dtype, [..., 1 + (T + 2 pad - frame_length) / hop, "
                            "frame_length]")},
         .infer = infer_frames});
  r.add({.name = "overlap_add",
         .doc = "Frames [..., F, L] summed at multiples of hop -> [..., (F - 1) hop + L].",
         .inputs = {input("frames", "frames", f32)},
         .attrs = {positive(required_attr("hop", AttrType::integer, "samples between frames"))},
         .outputs = {output("y", "f32 signal")},
         .infer = infer_overlap_add});
}

}  // namespace ops
}  // namespace loom
