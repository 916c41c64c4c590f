// The offline quantizer: affine (min-max or symmetric) and k-means lookup tables, with the
// expansion back to floats and the error report.
#include <algorithm>
#include <cmath>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "loom/error.h"
#include "loom/quant.h"

namespace loom::quant {

namespace {

struct FloatMatrix {
  int64_t rows = 0, cols = 0;
  std::vector<float> values;
  const float* row(int64_t r) const { return values.data() + r * cols; }
};

FloatMatrix read_weight(const TensorData& weight) {
  if (!weight.defined() || weight.rank() != 2)
    fail(ErrorKind::shape, "quantize: the weight must be a rank-2 tensor [N, K]");
  if (!is_float(weight.dtype()))
    fail(ErrorKind::dtype, std::string("quantize: the weight must be f32, f16 or bf16, not ") +
                               dtype_name(weight.dtype()));
  FloatMatrix m{weight.shape()[0], weight.shape()[1], weight.to_floats()};
  for (float v : m.values)
    if (!std::isfinite(v)) fail(ErrorKind::value, "quantize: the weight holds inf or NaN");
  return m;
}

void set_code(uint8_t* row, int64_t c, int bits, int code) {
  const int64_t bit = c * bits;
  uint8_t* p = row + bit / 8;
  const int shift = int(bit % 8);
  const unsigned word = unsigned(code) << shift;
  p[0] = uint8_t(p[0] | (word & 0xFF));
  if (shift + bits > 8) p[1] = uint8_t(p[1] | (word >> 8));
}

// Groups of one row: [begin, end) column ranges sharing a scale.
int64_t group_width(const QuantScheme& s, int64_t cols) {
  return s.granularity == Granularity::per_block ? s.block_size : cols;
}

QuantizedTensor make_empty(const QuantScheme& scheme, int64_t rows, int64_t cols) {
  QuantizedTensor q;
  q.scheme = scheme;
  q.rows = rows;
  q.cols = cols;
  q.codes = TensorData::zeros(DType::u8, {rows, q.row_bytes()});
  return q;
}

int round_clamp(double v, int lo, int hi) {
  return int(std::clamp(std::nearbyint(v), double(lo), double(hi)));
}

}  // namespace

int64_t QuantizedTensor::groups_per_row() const {
  return scheme.granularity == Granularity::per_block ? cols / scheme.block_size : 1;
}

int QuantizedTensor::code(int64_t r, int64_t c) const {
  const auto* row = static_cast<const uint8_t*>(codes.data()) + r * row_bytes();
  const int64_t bit = c * scheme.bits;
  const uint8_t* p = row + bit / 8;
  const int shift = int(bit % 8);
  unsigned word = p[0];
  if (shift + scheme.bits > 8) word |= unsigned(p[1]) << 8;
  return int((word >> shift) & ((1u << scheme.bits) - 1));
}

QuantizedTensor quantize_affine(const TensorData& weight, const QuantScheme& scheme) {
  scheme.validate();
  if (scheme.kind != QuantKind::affine)
    fail(ErrorKind::value, "quantize_affine: the scheme is not affine");
  if (scheme.super_block_size != 0)
    fail(ErrorKind::unsupported, "quantize_affine: super-block scales are read, not made");
  const FloatMatrix w = read_weight(weight);
  const int64_t width = group_width(scheme, w.cols);
  if (w.cols % std::max<int64_t>(width, 1) != 0)
    fail(ErrorKind::shape, "quantize_affine: K = " + std::to_string(w.cols) +
                               " is not a multiple of the block size " + std::to_string(width));
  QuantizedTensor q = make_empty(scheme, w.rows, w.cols);
  const bool per_tensor = scheme.granularity == Granularity::per_tensor;
  const int64_t scale_rows = per_tensor ? 1 : w.rows;
  const int64_t groups = per_tensor ? 1 : q.groups_per_row();
  std::vector<float> scales(static_cast<size_t>(scale_rows * groups));
  std::vector<float> mins(scales.size());
  std::vector<uint8_t> zeros(scales.size());
  const int levels = int(scheme.levels());
  const int mid = levels / 2;
  const int qmax = mid - 1;  // symmetric codes stay in mid ± qmax

  // Scale and offset of each group from its range.
  auto fit = [&](int64_t g, float lo, float hi) {
    if (scheme.offset == AffineOffset::midpoint) {
      const float amax = std::max(std::fabs(lo), std::fabs(hi));
      scales[g] = amax / float(qmax);
    } else if (scheme.offset == AffineOffset::min) {
      scales[g] = (hi - lo) / float(levels - 1);
      mins[g] = lo;
    } else {  // zero point: the range must hold 0 so that 0 is exact
      lo = std::min(lo, 0.f);
      hi = std::max(hi, 0.f);
      scales[g] = (hi - lo) / float(levels - 1);
      zeros[g] = scales[g] > 0 ? uint8_t(round_clamp(-lo / scales[g], 0, levels - 1)) : 0;
    }
  };
  if (per_tensor) {
    auto [lo, hi] = std::minmax_element(w.values.begin(), w.values.end());
    fit(0, w.values.empty() ? 0.f : *lo, w.values.empty() ? 0.f : *hi);
  } else {
    for (int64_t r = 0; r < w.rows; ++r)
      for (int64_t g = 0; g < groups; ++g) {
        const float* p = w.row(r) + g * width;
        auto [lo, hi] = std::minmax_element(p, p + width);
        fit(r * groups + g, *lo, *hi);
      }
  }
  auto* codes = static_cast<uint8_t*>(q.codes.data());
  for (int64_t r = 0; r < w.rows; ++r)
    for (int64_t c = 0; c < w.cols; ++c) {
      const int64_t g = per_tensor ? 0 : r * groups + c / width;
      const double scale = scales[g], v = w.row(r)[c];
      int code;
      if (scale == 0) {
        code = scheme.offset == AffineOffset::midpoint     ? mid
               : scheme.offset == AffineOffset::zero_point ? zeros[g]
                                                           : 0;
      } else if (scheme.offset == AffineOffset::midpoint) {
        code = mid + round_clamp(v / scale, -qmax, qmax);
      } else if (scheme.offset == AffineOffset::min) {
        code = round_clamp((v - mins[g]) / scale, 0, levels - 1);
      } else {
        code = round_clamp(v / scale + zeros[g], 0, levels - 1);
      }
      set_code(codes + r * q.row_bytes(), c, scheme.bits, code);
    }
  q.scales = TensorData::from_vector(scales, {scale_rows, groups});
  if (scheme.offset == AffineOffset::min)
    q.offsets = TensorData::from_vector(mins, {scale_rows, groups});
  if (scheme.offset == AffineOffset::zero_point)
    q.offsets = TensorData::from_vector(zeros, {scale_rows, groups});
  return q;
}

namespace {

// One-dimensional weighted k-means; returns sorted centres (k of them).
std::vector<float> kmeans_1d(const float* values, int64_t count, int k,
                             const KMeansOptions& options, std::mt19937_64& rng) {
  auto weight_of = [&](float v) {
    return options.magnitude_weighted ? double(std::fabs(v)) + 1e-12 : 1.0;
  };
  // k-means++ start on a sample (the start costs O(k * sample)).
  const int64_t sample_size = std::min<int64_t>(count, 16384);
  std::vector<float> sample(static_cast<size_t>(sample_size));
  if (sample_size == count) {
    sample.assign(values, values + count);
  } else {
    std::uniform_int_distribution<int64_t> pick(0, count - 1);
    for (float& s : sample) s = values[pick(rng)];
  }
  std::vector<float> centres;
  std::vector<double> dist(sample.size(), std::numeric_limits<double>::infinity());
  std::uniform_int_distribution<int64_t> first(0, sample_size - 1);
  centres.push_back(sample[size_t(first(rng))]);
  while (int(centres.size()) < k) {
    double total = 0;
    for (size_t i = 0; i < sample.size(); ++i) {
      const double d = double(sample[i]) - centres.back();
      dist[i] = std::min(dist[i], d * d);
      total += dist[i] * weight_of(sample[i]);
    }
    if (total <= 0) {  // fewer distinct values than centres: repeat one
      centres.push_back(centres.back());
      continue;
    }
    double target = std::uniform_real_distribution<double>(0, total)(rng);
    size_t chosen = sample.size() - 1;
    for (size_t i = 0; i < sample.size(); ++i) {
      target -= dist[i] * weight_of(sample[i]);
      if (target <= 0) {
        chosen = i;
        break;
      }
    }
    centres.push_back(sample[chosen]);
  }
  // Lloyd iterations over every value; in 1-D the nearest centre is found by bisection
  // against the midpoints of the sorted centres.
  std::vector<double> sum(static_cast<size_t>(k)), mass(static_cast<size_t>(k));
  std::vector<float> bounds(static_cast<size_t>(k - 1));
  for (int it = 0; it < options.iterations; ++it) {
    std::sort(centres.begin(), centres.end());
    for (int j = 0; j + 1 < k; ++j) bounds[j] = 0.5f * (centres[j] + centres[j + 1]);
    std::fill(sum.begin(), sum.end(), 0.0);
    std::fill(mass.begin(), mass.end(), 0.0);
    for (int64_t i = 0; i < count; ++i) {
      const float v = values[i];
      const size_t j = size_t(std::upper_bound(bounds.begin(), bounds.end(), v) - bounds.begin());
      const double wgt = weight_of(v);
      sum[j] += wgt * v;
      mass[j] += wgt;
    }
    bool moved = false;
    for (int j = 0; j < k; ++j)
      if (mass[j] > 0) {
        const float c = float(sum[j] / mass[j]);
        moved |= c != centres[j];
        centres[j] = c;
      }
    if (!moved) break;
  }
  std::sort(centres.begin(), centres.end());
  return centres;
}

int nearest(const std::vector<float>& table, float v) {
  // Sorted table: the nearest entry is at the insertion point or just before it.
  auto at = std::lower_bound(table.begin(), table.end(), v);
  if (at == table.begin()) return 0;
  if (at == table.end()) return int(table.size()) - 1;
  return (v - *(at - 1) <= *at - v) ? int(at - table.begin()) - 1 : int(at - table.begin());
}

}  // namespace

QuantizedTensor quantize_lookup(const TensorData& weight, int bits, Granularity granularity,
                                const KMeansOptions& options) {
  QuantScheme scheme;
  scheme.bits = bits;
  scheme.kind = QuantKind::lookup;
  scheme.granularity = granularity;
  scheme.table_dtype = DType::f32;
  scheme.validate();
  if (granularity == Granularity::per_block)
    fail(ErrorKind::unsupported, "quantize_lookup: tables are per tensor or per channel");
  if (options.iterations < 0) fail(ErrorKind::value, "quantize_lookup: negative iterations");
  const FloatMatrix w = read_weight(weight);
  if (w.values.empty()) fail(ErrorKind::shape, "quantize_lookup: the weight is empty");
  QuantizedTensor q = make_empty(scheme, w.rows, w.cols);
  const int k = int(scheme.levels());
  const bool per_tensor = granularity == Granularity::per_tensor;
  const int64_t tables = per_tensor ? 1 : w.rows;
  std::vector<float> table_values(static_cast<size_t>(tables * k));
  std::mt19937_64 rng(options.seed);
  for (int64_t t = 0; t < tables; ++t) {
    const float* values = per_tensor ? w.values.data() : w.row(t);
    const int64_t count = per_tensor ? int64_t(w.values.size()) : w.cols;
    std::vector<float> table = kmeans_1d(values, count, k, options, rng);
    std::copy(table.begin(), table.end(), table_values.begin() + t * k);
    const int64_t first_row = per_tensor ? 0 : t, last_row = per_tensor ? w.rows : t + 1;
    for (int64_t r = first_row; r < last_row; ++r)
      for (int64_t c = 0; c < w.cols; ++c)
        set_code(static_cast<uint8_t*>(q.codes.data()) + r * q.row_bytes(), c, bits,
                 nearest(table, w.row(r)[c]));
  }
  q.table = TensorData::from_vector(table_values, {tables, int64_t(k)});
  return q;
}

TensorData dequantize(const QuantizedTensor& q) {
  q.scheme.validate();
  const QuantScheme& s = q.scheme;
  const bool per_tensor = s.granularity == Granularity::per_tensor;
  const int64_t groups = per_tensor ? 1 : q.groups_per_row();
  const int64_t width = group_width(s, q.cols);
  const std::vector<float> scales =
      q.scales.defined() ? q.scales.to_floats() : std::vector<float>{};
  const std::vector<float> offsets =
      q.offsets.defined() ? q.offsets.to_floats() : std::vector<float>{};
  const std::vector<float> table = q.table.defined() ? q.table.to_floats() : std::vector<float>{};
  const int64_t scale_count = (per_tensor ? 1 : q.rows) * groups;
  const bool scaled = s.kind == QuantKind::affine || s.table_scaled;
  if (scaled && int64_t(scales.size()) != scale_count)
    fail(ErrorKind::shape, "dequantize: expected " + std::to_string(scale_count) + " scales");
  if (s.kind == QuantKind::affine && s.offset != AffineOffset::midpoint &&
      int64_t(offsets.size()) != scale_count)
    fail(ErrorKind::shape, "dequantize: expected " + std::to_string(scale_count) + " offsets");
  if (s.kind == QuantKind::lookup) {
    const int64_t tables = s.granularity == Granularity::per_channel ? q.rows : 1;
    if (int64_t(table.size()) != tables * s.levels())
      fail(ErrorKind::shape, "dequantize: expected " + std::to_string(tables) + " tables of " +
                                 std::to_string(s.levels()));
  }
  if (q.codes.nbytes() < size_t(q.rows * q.row_bytes()))
    fail(ErrorKind::shape, "dequantize: too few code bytes");
  std::vector<float> out(static_cast<size_t>(q.rows * q.cols));
  const int mid = int(s.levels() / 2);
  for (int64_t r = 0; r < q.rows; ++r)
    for (int64_t c = 0; c < q.cols; ++c) {
      const int code = q.code(r, c);
      const int64_t g = per_tensor ? 0 : r * groups + c / width;
      float v;
      if (s.kind == QuantKind::affine) {
        if (s.offset == AffineOffset::midpoint)
          v = scales[g] * float(code - mid);
        else if (s.offset == AffineOffset::zero_point)
          v = scales[g] * float(code - int(offsets[g]));
        else
          v = scales[g] * float(code) + offsets[g];
      } else {
        const int64_t t = s.granularity == Granularity::per_channel ? r : 0;
        v = table[t * s.levels() + code];
        if (s.table_scaled) v *= scales[g];
      }
      out[r * q.cols + c] = v;
    }
  return TensorData::from_vector(out, {q.rows, q.cols});
}

ReconstructionError reconstruction_error(const TensorData& original, const TensorData& restored) {
  if (original.shape() != restored.shape())
    fail(ErrorKind::shape, "reconstruction_error: the shapes differ");
  const std::vector<float> a = original.to_floats(), b = restored.to_floats();
  double diff2 = 0, norm2 = 0, max_abs = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    const double d = double(a[i]) - double(b[i]);
    diff2 += d * d;
    norm2 += double(a[i]) * double(a[i]);
    max_abs = std::max(max_abs, std::fabs(d));
  }
  return {norm2 > 0 ? std::sqrt(diff2 / norm2) : std::sqrt(diff2), max_abs};
}

void quantized_matmul(const QuantizedTensor& w, const float* x, int64_t m, float* y) {
  if (m < 0) fail(ErrorKind::shape, "quantized_matmul: negative row count");
  const std::vector<float> dense = dequantize(w).to_floats();
  const int64_t n = w.rows, k = w.cols;
#pragma omp parallel for schedule(static)
  for (int64_t j = 0; j < n; ++j) {
    const float* wr = dense.data() + j * k;
    for (int64_t i = 0; i < m; ++i) {
      const float* xr = x + i * k;
      float acc = 0;
#pragma omp simd reduction(+ : acc)
      for (int64_t c = 0; c < k; ++c) acc += xr[c] * wr[c];
      y[i * n + j] = acc;
    }
  }
}

}  // namespace loom::quant
