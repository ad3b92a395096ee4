#include "core/patterns.hpp"

#include <cmath>
#include <stdexcept>
#include <type_traits>

#include "core/exact_sum.hpp"
#include "core/ordered.hpp"

namespace histgpu {

namespace {

// The value of bit pattern p of dtype D, in its kernel type (float for every 8/16-bit dtype),
// by core's convert<D>: the conversion every kernel uses.
template <DType D> float decode(std::uint32_t p) {
  using S = typename DTypeTraits<D>::Storage;
  static_assert(std::is_same_v<typename DTypeTraits<D>::Kernel, float>, "8/16-bit dtypes count in float32");
  return convert<D>(static_cast<S>(p));
}

// The pattern of rank r when all patterns of D are listed by the value they stand for (values
// never decrease with the rank; NaN patterns sit wherever they fall and are skipped). Floats are
// sign-magnitude (the negative patterns from the largest magnitude down, -0 right before +0),
// signed integers two's complement, bool and unsigned integers in their natural order.
template <DType D> std::uint32_t pattern_of_rank(std::uint32_t r) {
  using S = typename DTypeTraits<D>::Storage;
  constexpr std::uint32_t space = std::uint32_t(1) << (8 * sizeof(S)), half = space / 2;
  constexpr Decode dec = DTypeTraits<D>::decode;
  if constexpr (dec == Decode::Half || dec == Decode::BFloat16 || dec == Decode::E4M3FN || dec == Decode::E5M2)
    return r < half ? space - 1 - r : r - half;
  else if constexpr (std::is_signed_v<S>)
    return (r + half) & (space - 1);
  else
    return r;
}

// Calls f(value, count) for every finite value present, in non-decreasing order of value, and
// returns the non-finite counts (in a RangeStats whose num/min/max f is left to fill in).
template <DType D, class F> RangeStats walk_values(const std::vector<std::uint64_t>& counts, F&& f) {
  constexpr std::uint32_t space = std::uint32_t(1) << (8 * sizeof(typename DTypeTraits<D>::Storage));
  if (counts.size() != space) throw std::invalid_argument("histgpu: pattern counts of the wrong size");
  RangeStats s;
  for (std::uint32_t r = 0; r < space; ++r) {
    const std::uint32_t p = pattern_of_rank<D>(r);
    const std::uint64_t c = counts[p];
    if (c == 0) continue;
    const float x = decode<D>(p);
    if (std::isnan(x)) s.nan += c;
    else if (std::isinf(x)) (x > 0 ? s.posinf : s.neginf) += c;
    else f(x, c);
  }
  return s;
}

template <class F> decltype(auto) visit_narrow(DType t, F&& f) {
  return visit_dtype(t, [&](auto d) {
    constexpr DType D = decltype(d)::value;
    if constexpr (sizeof(typename DTypeTraits<D>::Storage) <= 2) {
      return f(d);
    } else {
      throw std::invalid_argument("histgpu: the raw-pattern path takes 8- and 16-bit dtypes only");
      return f(std::integral_constant<DType, DType::UInt8>{});  // for the return type only
    }
  });
}

// Counts per bucket of a threshold table T[0..nb] (core/thresholds.hpp): a value x is in the
// bucket g with T[g] <= x < T[g+1], as in every kernel. Values arrive in order, so the bucket
// only ever moves forwards.
template <DType D>
std::vector<std::uint64_t> bucket_counts(const std::vector<std::uint64_t>& counts, const float* t, std::int64_t nb) {
  std::vector<std::uint64_t> out(static_cast<std::size_t>(nb), 0);
  std::int64_t g = 0;
  walk_values<D>(counts, [&](float x, std::uint64_t c) {
    while (x >= t[g + 1]) ++g;  // t[nb] = +inf stops it
    out[g] += c;
  });
  return out;
}

}  // namespace

RangeStats patterns_range(DType dtype, const std::vector<std::uint64_t>& counts) {
  return visit_narrow(dtype, [&](auto d) {
    float lo = 0, hi = 0;
    std::uint64_t num = 0;
    RangeStats s = walk_values<decltype(d)::value>(counts, [&](float x, std::uint64_t c) {
      if (num == 0) lo = x;  // values come in order: the first is the min, the last the max
      hi = x;
      num += c;
    });
    s.num = num;
    if (num) {
      s.min = lo;
      s.max = hi;
    }
    return s;
  });
}

std::vector<std::uint64_t> patterns_v2_counts(DType dtype, const std::vector<std::uint64_t>& counts,
                                              const V2Plan& plan) {
  if (plan.kernel != KernelType::F32) throw std::logic_error("histgpu: 8/16-bit dtypes are planned in float32");
  return visit_narrow(dtype, [&](auto d) {
    return bucket_counts<decltype(d)::value>(counts, plan.thresholds_f32.data(), plan.spec.k);
  });
}

V1Raw patterns_v1(DType dtype, const std::vector<std::uint64_t>& counts) {
  return visit_narrow(dtype, [&](auto d) {
    constexpr DType D = decltype(d)::value;
    static const std::vector<float> thresholds = v1_thresholds<float>();
    V1Raw raw;
    raw.stats = patterns_range(dtype, counts);
    raw.counts = bucket_counts<D>(counts, thresholds.data(), static_cast<std::int64_t>(thresholds.size()) - 1);
    // x = m * 2^(e - ExactBins::kLsbBias); count * m and count * m^2 fit the 128-bit bins
    // (counts < 2^64, m < 2^24), and the bins fold into the exact sums once.
    ExactBins<float> bins;
    walk_values<D>(counts, [&](float x, std::uint64_t c) {
      const std::uint32_t u = bits_of(x);
      const std::uint32_t field = (u >> 23) & 0xffu;
      const std::uint64_t m = (u & 0x7fffffu) | (field ? 0x800000u : 0u);
      const int e = field ? static_cast<int>(field) : 1;
      const int128 cm = static_cast<int128>(static_cast<uint128>(c) * m);
      bins.sum[e] += (u >> 31) ? -cm : cm;
      bins.sumsq[e] += static_cast<uint128>(c) * (m * m);
    });
    bins.fold_into(raw.sum, raw.sumsq);
    return raw;
  });
}

V2Result histogram_v2_from_patterns(const StridedView& view, std::int64_t k, const std::vector<std::uint64_t>& counts) {
  k = checked_bucket_count(k);
  const RangeStats s = patterns_range(view.dtype, counts);
  const GlobalRange global{s.min, s.max, repeat_stats(s, view.multiplicity).num};
  std::vector<std::uint64_t> per_bucket;
  if (v2_needs_counts(k, s, global))
    per_bucket = patterns_v2_counts(view.dtype, counts, V2Plan::make(view.dtype, global.min, global.max, k));
  return assemble_v2(view, k, s, global, std::move(per_bucket));
}

}  // namespace histgpu
