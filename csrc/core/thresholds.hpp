// Bucket specifications and their thresholds, computed once on the host for every engine.
//
// A spec maps a finite value x (as float64) to a bucket index f(x) that is monotone in x.
// For each bucket j >= 1 the threshold t_j is the smallest value of the kernel's float type
// with f >= j, so an engine only needs `x >= t_j` comparisons in the input's own precision
// to agree bit for bit with the float64 formula (docs/semantics.md §2.1).
#pragma once
#include <cstdint>
#include <vector>

#include "core/types.hpp"

namespace histgpu {

// TensorBoard's v2 bucketing (summary_v2._buckets) of values in [min, max], k buckets.
struct V2Spec {
  std::int64_t k = 0;
  double min = 0.0;
  double max = 0.0;
  double width = 0.0;   // (max - min) / k, or (max/2 - min/2) / k when `halved`
  bool halved = false;  // max - min overflows float64: every term is halved (documented behaviour)

  static V2Spec make(double min, double max, std::int64_t k);
  // TensorBoard's formula, in float64: min(floor((x - min) / width), k - 1).
  std::int64_t bucket(double x) const;
  // TensorBoard's edges: tf.linspace(min, max, k + 1) with the last edge forced to max.
  std::vector<double> edges() const;
  // Inner edge i (1 <= i < k): tf.linspace's `min + width * i`.
  double edges_guess(std::int64_t i) const {
    const double di = static_cast<double>(i);
    return halved ? 2.0 * (min * 0.5 + width * di) : min + width * di;
  }
};

// TensorFlow's default v1 bucket limits (tensorflow/core/lib/histogram/histogram.cc).
const std::vector<double>& v1_default_limits();
// TF's Histogram::Add: std::upper_bound(limits, x), clamped to the last bucket.
std::int64_t v1_bucket(double x);

// Thresholds for a bucketing into `nb` buckets, as a table T[0..nb]: T[0] = -inf,
// T[j] = t_j, T[nb] = +inf, and t_j = +inf when no value reaches bucket j. A finite x is in
// bucket g exactly when T[g] <= x < T[g+1].
template <class K> std::vector<K> v2_thresholds(const V2Spec& spec, K data_min, K data_max);
template <class K> std::vector<K> v1_thresholds();

// A first guess of the v1 bucket from the top bits of the ordered key (sign, exponent and 4
// mantissa bits): the bucket of the smallest value with that prefix. A prefix spans at most a
// factor 1.0625, less than one 1.1x step, so the answer is the guess or the next bucket. The
// float32 table (16 KiB) stays in L1. One extra entry after the 2^bits prefixes holds the
// bucket count itself: a "no bucket" index kernels may use for values they leave out.
template <class K> constexpr int v1_guess_bits() { return sizeof(K) == 4 ? 13 : 16; }
template <class K> const std::vector<std::int16_t>& v1_guess_table();

}  // namespace histgpu
