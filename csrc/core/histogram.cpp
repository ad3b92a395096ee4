#include "core/histogram.hpp"

#include "core/ordered.hpp"
#include "core/patterns.hpp"

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

std::int64_t checked_bucket_count(std::int64_t k) {
  if (k < 0) return 0;
  if (k > kMaxBuckets) throw std::invalid_argument("histgpu: bucket count above 2^24");
  return k;
}

V1Sizes v1_sizes() { return V1Sizes{v1_default_limits().size(), static_cast<std::size_t>(BigFixed::kDigits)}; }

std::vector<double> v2_edges(const GlobalRange& range, std::int64_t k) {
  k = checked_bucket_count(k);
  if (k == 0 || range.num == 0) return std::vector<double>(static_cast<std::size_t>(k) + 1, 0.0);
  // One distinct value: every edge is the value (and the last bucket holds everything).
  if (range.max - range.min == 0.0) return std::vector<double>(static_cast<std::size_t>(k) + 1, range.max);
  return V2Spec::make(range.min, range.max, k).edges();
}

bool v2_needs_counts(std::int64_t k, const RangeStats& local_stats, const GlobalRange& global) {
  return k > 0 && global.num != 0 && global.max - global.min != 0.0 && local_stats.num != 0;
}

V2Result assemble_v2(const StridedView& view, std::int64_t k, const RangeStats& local_stats,
                     const GlobalRange& global, std::vector<std::uint64_t> counts) {
  k = checked_bucket_count(k);
  V2Result r;
  r.k = k;
  r.stats = repeat_stats(local_stats, view.multiplicity);
  r.edges = v2_edges(global, k);
  if (!v2_needs_counts(k, local_stats, global)) {
    // TensorBoard: k rows of zeros for no values; one distinct value fills the last bucket
    r.counts.assign(static_cast<std::size_t>(k), 0);
    if (k > 0 && global.num != 0 && global.max - global.min == 0.0) r.counts[k - 1] = r.stats.num;
    return r;
  }
  if (counts.size() != static_cast<std::size_t>(k)) throw std::logic_error("histgpu: an engine returned the wrong number of counts");
  if (view.multiplicity != 1)
    for (auto& c : counts) c = times(c, view.multiplicity);
  r.counts = std::move(counts);
  return r;
}

V2Result histogram_v2_in_range(Engine& engine, const StridedView& view, std::int64_t k,
                               const RangeStats& local_stats, const GlobalRange& global,
                               RangeStats* observed) {
  k = checked_bucket_count(k);
  std::vector<std::uint64_t> counts;
  if (v2_needs_counts(k, local_stats, global)) {
    const V2Plan plan = V2Plan::make(view.dtype, global.min, global.max, k);
    counts = engine.count_v2(view, plan, local_stats.nonfinite() != 0, observed);
  } else if (observed) {
    *observed = view.size() ? engine.range(view) : RangeStats{};
  }
  return assemble_v2(view, k, local_stats, global, std::move(counts));
}

namespace {

bool same_stats(const RangeStats& a, const RangeStats& b) {
  const bool counts = a.num == b.num && a.nan == b.nan && a.posinf == b.posinf && a.neginf == b.neginf;
  // min/max compared as selections: bit patterns, so that -0.0 and +0.0 differ
  return counts && (a.num == 0 || (bits_of(a.min) == bits_of(b.min) && bits_of(a.max) == bits_of(b.max)));
}

// The shard's known stats with its repetition taken out again (range_of() put it in).
RangeStats unrepeated(const RangeStats& s, std::uint64_t m) {
  const std::uint64_t counts[4] = {s.num, s.nan, s.posinf, s.neginf};
  for (std::uint64_t c : counts)
    if (m == 0 || c % m != 0)
      throw std::invalid_argument(
          "histgpu: the local stats do not describe this shard (its counts are not multiples of the view's repetition)");
  RangeStats r = s;
  r.num /= m;
  r.nan /= m;
  r.posinf /= m;
  r.neginf /= m;
  return r;
}

}  // namespace

V2Result histogram_v2_shard(Engine& engine, const StridedView& view, std::int64_t k,
                            const GlobalRange& global, const RangeStats* known_local) {
  if (!std::isfinite(global.min) || !std::isfinite(global.max) || ordered_key(global.min) > ordered_key(global.max))
    throw std::invalid_argument("histgpu: the shared range must have finite min <= max (a merged RangeInfo)");
  const RangeStats local = known_local ? unrepeated(*known_local, view.multiplicity)
                                       : (view.size() ? engine.range(view) : RangeStats{});
  const RangeStats repeated = repeat_stats(local, view.multiplicity);
  // A shard outside the shared range would be clamped into the end buckets silently.
  const bool inside = repeated.num <= global.num &&
                      (repeated.num == 0 || (ordered_key(repeated.min) >= ordered_key(global.min) &&
                                             ordered_key(repeated.max) <= ordered_key(global.max)));
  if (!inside)
    throw std::invalid_argument(
        "histgpu: this shard lies outside the shared range (or holds more values than it): merge the ranges "
        "of every shard first");
  RangeStats seen;
  V2Result r = histogram_v2_in_range(engine, view, k, local, global, known_local ? &seen : nullptr);
  // The values counted (in the count pass's own read) must be the ones local= describes.
  if (known_local && !same_stats(seen, local))
    throw std::invalid_argument(
        "histgpu: the local stats (local=) do not describe this shard: its range or value counts differ from the data's; "
        "pass this shard's own local_range() result");
  return r;
}

RangeStats range_of(Engine& engine, const StridedView& view) {
  if (view.size() == 0) return RangeStats{};
  return repeat_stats(engine.range(view), view.multiplicity);
}

V2Result histogram_v2(Engine& engine, const StridedView& view, std::int64_t k) {
  std::vector<std::uint64_t> patterns;
  if (engine.count_patterns(view, patterns)) return histogram_v2_from_patterns(view, k, patterns);
  const RangeStats s = view.size() ? engine.range(view) : RangeStats{};
  return histogram_v2_in_range(engine, view, k, s, GlobalRange{s.min, s.max, repeat_stats(s, view.multiplicity).num});
}

std::vector<V2Result> Engine::v2_many(const std::vector<BatchItem>& items) {
  std::vector<V2Result> out;
  out.reserve(items.size());
  for (const BatchItem& it : items) out.push_back(histogram_v2(*this, it.view, it.k));
  return out;
}

namespace {

// The engine's v1 pass with the view's repetition applied to counts and exact sums.
V1Raw repeated_v1(Engine& engine, const StridedView& view) {
  std::vector<std::uint64_t> patterns;
  V1Raw raw = engine.count_patterns(view, patterns) ? patterns_v1(view.dtype, patterns) : engine.v1(view);
  raw.stats = repeat_stats(raw.stats, view.multiplicity);
  if (view.multiplicity != 1) {
    for (auto& c : raw.counts) c = times(c, view.multiplicity);
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
