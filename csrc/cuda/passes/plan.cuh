// The v2 thresholds, computed on the device so that a batch of histograms (and the writer's
// asynchronous path) needs no host round trip between the range pass and the count pass.
//
// This is the one place where the GPU does not take its plan from the host: the bucket map
// f(x) = min(floor((x - min) / width), k - 1) of core/thresholds.cpp (V2Spec) is evaluated
// here in the same IEEE float64 operations (explicitly rounded intrinsics on the device, so
// that no multiply-add is ever contracted), and t_j is *the* smallest value of the kernel
// type with f >= j: a unique answer, whatever search finds it. Two checks keep this honest:
//  * the host build of this header is compared with core's v2_thresholds on many ranges
//    (tests/cuda/test_build.py, through _cuda._check_planner), and
//  * every batch result is assembled on the host by core's driver, which builds core's own
//    plan and compares its thresholds with the device's bit for bit (engine.cpp, ReplayEngine).
#pragma once
#include <cmath>
#include <cstdint>

#include "core/ordered.hpp"

namespace histgpu::cuda {

#if defined(__CUDA_ARCH__)
HISTGPU_HD double d_add(double a, double b) { return __dadd_rn(a, b); }
HISTGPU_HD double d_sub(double a, double b) { return __dsub_rn(a, b); }
HISTGPU_HD double d_mul(double a, double b) { return __dmul_rn(a, b); }
HISTGPU_HD double d_div(double a, double b) { return __ddiv_rn(a, b); }
#else
HISTGPU_HD double d_add(double a, double b) { return a + b; }
HISTGPU_HD double d_sub(double a, double b) { return a - b; }
HISTGPU_HD double d_mul(double a, double b) { return a * b; }
HISTGPU_HD double d_div(double a, double b) { return a / b; }
#endif

HISTGPU_HD bool d_isinf(double x) {
  return (bits_of(x) & 0x7fffffffffffffffull) == 0x7ff0000000000000ull;
}

// TensorBoard's v2 bucketing of [min, max] into k buckets (core's V2Spec, same arithmetic).
struct SpecHD {
  double min, max, width;
  std::int64_t k;
  bool halved;
};

HISTGPU_HD SpecHD make_spec(double min, double max, std::int64_t k) {
  SpecHD s;
  s.k = k;
  s.min = min;
  s.max = max;
  const double range = d_sub(max, min);
  s.halved = d_isinf(range);
  s.width = s.halved ? d_div(d_sub(d_mul(max, 0.5), d_mul(min, 0.5)), static_cast<double>(k))
                     : d_div(range, static_cast<double>(k));
  return s;
}

HISTGPU_HD std::int64_t spec_bucket(const SpecHD& s, double x) {
  const double offset = s.halved ? d_sub(d_mul(x, 0.5), d_mul(s.min, 0.5)) : d_sub(x, s.min);
  const double q = ::floor(d_div(offset, s.width));
  if (!(q >= 0.0)) return 0;
  if (q >= static_cast<double>(s.k - 1)) return s.k - 1;
  return static_cast<std::int64_t>(q);
}

// TensorFlow's linspace edge i: only a starting point for the search below.
HISTGPU_HD double spec_edge(const SpecHD& s, std::int64_t i) {
  const double di = static_cast<double>(i);
  return s.halved ? d_mul(2.0, d_add(d_mul(s.min, 0.5), d_mul(s.width, di)))
                  : d_add(s.min, d_mul(s.width, di));
}

template <class K> HISTGPU_HD std::int64_t key_bucket(const SpecHD& s, typename FloatBits<K>::UInt key) {
  return spec_bucket(s, static_cast<double>(from_ordered_key<K>(key)));
}

// t_j for 1 <= j < k: the value of the smallest key in (klo, khi] whose bucket is >= j
// (+inf when even the maximum stays below j). klo, khi: ordered keys of the data's min, max.
template <class K>
HISTGPU_HD K plan_threshold(const SpecHD& s, typename FloatBits<K>::UInt klo,
                            typename FloatBits<K>::UInt khi, std::int64_t top, std::int64_t j) {
  using Key = typename FloatBits<K>::UInt;
  if (j > top) return from_bits<K>(sizeof(K) == 4 ? Key(0x7f800000u) : Key(0x7ff0000000000000ull));
  Key c = ordered_key(static_cast<K>(spec_edge(s, j)));
  c = c < klo ? klo : (c > khi ? khi : c);
  // Bracket [lo, hi] with bucket(lo) < j <= bucket(hi), walking out from c in doubling steps.
  Key lo, hi;
  if (key_bucket<K>(s, c) >= j) {
    hi = c;
    for (Key step = 1;; step *= 2) {
      lo = (hi - klo > step) ? hi - step : klo;
      if (key_bucket<K>(s, lo) < j) break;
      hi = lo;
    }
  } else {
    lo = c;
    for (Key step = 1;; step *= 2) {
      hi = (khi - lo > step) ? lo + step : khi;
      if (key_bucket<K>(s, hi) >= j) break;
      lo = hi;
    }
  }
  while (hi - lo > 1) {
    const Key mid = lo + (hi - lo) / 2;
    if (key_bucket<K>(s, mid) >= j) hi = mid;
    else lo = mid;
  }
  return from_ordered_key<K>(hi);
}

}  // namespace histgpu::cuda
