#include "core/histogram.hpp"

#include <cfloat>
#include <cmath>
#include <limits>
#include <stdexcept>

namespace histgpu {

namespace {

std::uint64_t times(std::uint64_t a, std::uint64_t m) {
  std::uint64_t r;
  if (__builtin_mul_overflow(a, m, &r))
    throw std::overflow_error("histgpu: element count overflows 64 bits");
  return r;
}

}  // namespace

RangeStats repeat_stats(RangeStats s, std::uint64_t m) {
  s.num = times(s.num, m);
  s.nan = times(s.nan, m);
  s.posinf = times(s.posinf, m);
  s.neginf = times(s.neginf, m);
  return s;
}

V2Plan V2Plan::make(DType dtype, double min, double max, std::int64_t k) {
  V2Plan p;
  p.spec = V2Spec::make(min, max, k);
  p.kernel = kernel_type(dtype);
  if (p.kernel == KernelType::F32)
    p.thresholds_f32 = v2_thresholds<float>(p.spec, static_cast<float>(min), static_cast<float>(max));
  else
    p.thresholds_f64 = v2_thresholds<double>(p.spec, min, max);
  p.guess_lo = min;
  p.guess_scale = p.spec.halved ? 0.5 / p.spec.width : 1.0 / p.spec.width;
  // |q_kernel - q_tensorboard| <= q * (3 ulp of the kernel type + 3 ulp of float64) <=
  // k * 2^-22 in float32, k * 2^-51 in float64; the tolerances below are 4x that. They need
  // q's inputs to stay normal and finite: no halving, a normal scale and, in float32, a range
  // that does not overflow (x - lo must not round to inf).
  p.guess_tolerance = std::numeric_limits<double>::quiet_NaN();
  const double kd = static_cast<double>(k);
  if (!p.spec.halved) {
    if (p.kernel == KernelType::F32) {
      if (std::isnormal(static_cast<float>(p.guess_scale)) &&
          std::isfinite(static_cast<float>(max - min)) && k <= (std::int64_t(1) << 16))
        p.guess_tolerance = (kd + 1.0) * 0x1p-20;
    } else if (std::isnormal(p.guess_scale)) {
      p.guess_tolerance = (kd + 1.0) * 0x1p-49;
    }
  }
  return p;
}

V2Result histogram_v2_in_range(Engine& engine, const StridedView& view, std::int64_t k,
                               const RangeStats& local_stats, double global_min,
                               double global_max, std::uint64_t global_num) {
  if (k < 0) k = 0;
  if (k > kMaxBuckets) throw std::invalid_argument("histgpu: bucket count above 2^24");
  V2Result r;
  r.k = k;
  r.stats = repeat_stats(local_stats, view.multiplicity);
  r.counts.assign(static_cast<std::size_t>(k), 0);
  r.edges.assign(static_cast<std::size_t>(k) + 1, 0.0);
  if (k == 0 || global_num == 0) return r;  // TensorBoard: k rows of zeros
  if (global_max - global_min == 0.0) {
    // One distinct value: every edge is the value and the last bucket holds everything.
    r.edges.assign(static_cast<std::size_t>(k) + 1, global_max);
    r.counts[k - 1] = r.stats.num;
    return r;
  }
  const V2Plan plan = V2Plan::make(view.dtype, global_min, global_max, k);
  r.edges = plan.spec.edges();
  if (local_stats.num == 0) return r;
  r.counts = engine.count_v2(view, plan, local_stats.nonfinite() != 0);
  for (auto& c : r.counts) c = times(c, view.multiplicity);
  return r;
}

V2Result histogram_v2(Engine& engine, const StridedView& view, std::int64_t k) {
  const RangeStats s = engine.range(view);
  return histogram_v2_in_range(engine, view, k, s, s.min, s.max, s.num);
}

namespace {

// The engine's v1 pass with the view's repetition applied to counts and exact sums.
V1Raw repeated_v1(Engine& engine, const StridedView& view) {
  V1Raw raw = engine.v1(view);
  raw.stats = repeat_stats(raw.stats, view.multiplicity);
  for (auto& c : raw.counts) c = times(c, view.multiplicity);
  if (view.multiplicity != 1) {
    raw.sum.mul(view.multiplicity);
    raw.sumsq.mul(view.multiplicity);
  }
  return raw;
}

}  // namespace

V1Result histogram_v1(Engine& engine, const StridedView& view) {
  V1Raw raw = repeated_v1(engine, view);
  V1Result r;
  r.stats = raw.stats;
  r.counts = std::move(raw.counts);
  if (r.stats.num == 0) {  // TensorFlow's Histogram starts from these
    r.stats.min = DBL_MAX;
    r.stats.max = -DBL_MAX;
  }
  r.sum = raw.sum.to_double();
  r.sum_squares = raw.sumsq.to_double();
  return r;
}

V1Partial histogram_v1_partial(Engine& engine, const StridedView& view) {
  V1Raw raw = repeated_v1(engine, view);
  V1Partial p;
  p.counts = std::move(raw.counts);
  p.stats = raw.stats;
  p.sum_digits.resize(BigFixed::kDigits);
  p.sumsq_digits.resize(BigFixed::kDigits);
  raw.sum.to_digits(p.sum_digits.data());
  raw.sumsq.to_digits(p.sumsq_digits.data());
  return p;
}

}  // namespace histgpu
