// numpy.histogram's bins, counted by the engines (histgpu.numpy_histogram, and the writer's
// PyTorch layout, which is numpy.histogram of the values as float64).
//
// numpy puts a value x in a bin by a rule that is evaluated per value:
//  * equal-width bins: a value outside [first, last] is not counted; otherwise the guess
//    trunc(((x - first) / denom) * n), each step rounded to the float type numpy computes it
//    in, is corrected once down (x < edge[g]) and once up (x >= edge[g + 1], except in the
//    last bin) against numpy's own linspace edges;
//  * explicit edges: searchsorted, the last bin closed on the right.
// Every ingredient of either rule (the range test, each comparison with an edge, the guess
// reaching m) is a monotone step function of x. On the intervals between all their steps the
// whole rule is constant, whatever it does in between, so the engines count against a threshold
// table of those intervals (core/thresholds.hpp) and the host adds each interval's count to
// the bin the rule gives there. The counts are numpy's, bit for bit, by construction.
#pragma once
#include <cstdint>
#include <vector>

#include "core/histogram.hpp"

namespace histgpu {

// The floating-point formats numpy computes in (ml_dtypes' formats included).
enum class NpFloat : int { F16 = 0, BF16 = 1, F32 = 2, F64 = 3, E4M3FN = 4, E5M2 = 5 };

// `v` rounded to the nearest value of `p` (ties to even), as a cast to it rounds: overflow gives
// inf, or NaN in formats without infinities (float8_e4m3fn).
double np_round(double v, NpFloat p);

// One numpy bin rule, with every constant numpy computes once per histogram (the edges, the
// range, the divisor) taken from numpy itself by the Python layer.
struct NumpyBins {
  bool uniform = true;
  std::vector<double> edges;            // n + 1 edges, values of edge_prec
  NpFloat edge_prec = NpFloat::F64;     // x is rounded to it before it is compared with an edge
  double keep_lo = 0.0, keep_hi = 0.0;  // counted only where keep_lo <= x <= keep_hi ...
  NpFloat keep_prec = NpFloat::F64;     // ... with x rounded to this format
  // equal-width bins: the guess q = ((x - sub_first) / denom) * n_mul, x rounded to edge_prec
  // first, each operation rounded to the format numpy does it in.
  double sub_first = 0.0;
  NpFloat sub_prec = NpFloat::F64;
  double denom = 1.0;
  NpFloat div_prec = NpFloat::F64;
  double n_mul = 1.0;
  NpFloat mul_prec = NpFloat::F64;

  std::int64_t bins() const { return static_cast<std::int64_t>(edges.size()) - 1; }
  // std::invalid_argument unless the edges are at least 2, not NaN and non-decreasing.
  void check() const;
  // numpy's bin of x, or -1 where numpy does not count it. std::domain_error where numpy's own
  // index computation leaves [0, n) (numpy fails there too).
  std::int64_t bin(double x) const;
  // numpy's unrounded guess ((x - first) / denom) * n, for equal-width bins.
  double guess(double x) const;
};

// Engine buckets for a NumpyBins over the finite values in [data_min, data_max]: a threshold
// table of intervals on which the rule is constant, and each interval's numpy bin (-1: none).
struct NumpyPlan {
  V2Plan plan;
  std::vector<std::int64_t> label;
  static NumpyPlan make(const NumpyBins& bins, DType dtype, double data_min, double data_max);
};

// numpy's counts (n of them) of the view's values. `stats` is the view's range_of() (finite
// min/max and value counts, multiplicity included); infinities are counted from it where numpy
// counts them (explicit edges reaching +-inf).
std::vector<std::uint64_t> numpy_counts(Engine& engine, const StridedView& view, const NumpyBins& bins,
                                        const RangeStats& stats);

}  // namespace histgpu
