// The raw-pattern path of 8- and 16-bit dtypes (docs/semantics.md §2.4), engine-independent.
//
// An 8- or 16-bit element can hold only 2^8 or 2^16 bit patterns. An engine that counts how
// often each pattern occurs (one pass over the raw bytes, no conversion, no range needed first)
// has read everything a histogram needs: the range, the v2 buckets, the v1 buckets and the exact
// sums all follow from the pattern counts, exactly, by applying the very rules the kernels apply
// to each distinct value once, with its count. This file is that host-side half, written once
// for every engine (the CPU engine counts patterns in csrc/cpu; a GPU engine can do the same).
#pragma once
#include <cstdint>
#include <vector>

#include "core/histogram.hpp"

namespace histgpu {

// 8- and 16-bit dtypes (bool, int8/uint8, int16/uint16, float16, bfloat16, the FP8 formats).
inline bool has_pattern_path(DType t) { return dtype_size(t) <= 2; }
// How many bit patterns an element of `t` has: the length of its pattern count vector.
inline std::size_t pattern_space(DType t) { return std::size_t(1) << (8 * dtype_size(t)); }

// Every function below takes `counts`: for each raw bit pattern p (the element's bytes as a
// little-endian unsigned integer), how many elements of the view hold it (multiplicity
// excluded, as engines count). counts.size() must be pattern_space(dtype).

// What Engine::range gives: finite min/max (selections: -0.0 < +0.0) and value counts.
RangeStats patterns_range(DType dtype, const std::vector<std::uint64_t>& counts);
// What Engine::count_v2 gives: counts of the finite values in each of plan.spec.k buckets.
std::vector<std::uint64_t> patterns_v2_counts(DType dtype, const std::vector<std::uint64_t>& counts,
                                              const V2Plan& plan);
// What Engine::v1 gives: counts over TensorFlow's limits, range and exact sums.
V1Raw patterns_v1(DType dtype, const std::vector<std::uint64_t>& counts);

// The full results from pattern counts, as histogram_v2 / histogram_v1 build them (the view
// supplies the dtype and the multiplicity).
V2Result histogram_v2_from_patterns(const StridedView& view, std::int64_t k, const std::vector<std::uint64_t>& counts);

}  // namespace histgpu
