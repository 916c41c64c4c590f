// Parameters of the Fourier transforms and of frames / overlap_add as their kernels read them
// (see norm_params.h), and the scale each normalisation applies, shared by the CPU and CUDA
// kernels.
#pragma once

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "ir/node.h"

namespace loom::ops {

enum class FftKind { forward, inverse, real_forward, real_inverse };

struct FftParams {
  FftKind kind;
  std::vector<int> axes;  // normalised, in the given order; the real axis is the last one
  std::string norm;       // backward, ortho, forward
  int64_t n;              // irfft's real length (0: 2 * (m - 1))

  // `rank` normalises negative axes (inference has checked them).
  static FftParams decode(const ir::Node& node, int rank) {
    const std::string& op = node.op_name();
    FftParams p{op == "fft"    ? FftKind::forward
                : op == "ifft" ? FftKind::inverse
                : op == "rfft" ? FftKind::real_forward
                               : FftKind::real_inverse,
                {},
                node.attrs.get<std::string>("norm"),
                op == "irfft" ? node.attrs.get<int64_t>("n") : 0};
    for (int64_t a : node.attrs.get<std::vector<int64_t>>("axes"))
      p.axes.push_back(int(a < 0 ? a + rank : a));
    return p;
  }

  bool inverse() const { return kind == FftKind::inverse || kind == FftKind::real_inverse; }
  bool real() const { return kind == FftKind::real_forward || kind == FftKind::real_inverse; }

  // The factor applied to the unnormalised transform, for a signal of `points` elements
  // (the product of the transformed lengths of the real or complex signal).
  double scale(int64_t points) const {
    if (points == 0) return 1.0;
    if (norm == "ortho") return 1.0 / std::sqrt(double(points));
    const bool scaled = norm == "forward" ? !inverse() : inverse();
    return scaled ? 1.0 / double(points) : 1.0;
  }
};

struct FramesParams {
  int64_t frame_length;
  int64_t hop;
  int64_t pad;
  bool reflect;
  static FramesParams decode(const ir::Node& node) {
    return {node.attrs.get<int64_t>("frame_length"), node.attrs.get<int64_t>("hop"),
            node.attrs.get<int64_t>("pad"), node.attrs.get<std::string>("pad_mode") == "reflect"};
  }
  // Index into the unpadded signal of length t of padded position p, or -1 for a zero.
  // Reflection mirrors without repeating the edge (numpy's "reflect"); inference checks
  // pad < t for it, so one reflection suffices.
  int64_t source(int64_t p, int64_t t) const {
    int64_t i = p - pad;
    if (i >= 0 && i < t) return i;
    if (!reflect) return -1;
    return i < 0 ? -i : 2 * (t - 1) - i;
  }
};

}  // namespace loom::ops
