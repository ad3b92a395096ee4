// The exact bucket of a value from a threshold table, for every engine (host and device).
#pragma once
#include <cstdint>

#include "core/ordered.hpp"  // HISTGPU_HD

namespace histgpu {

// Bucket of finite x in a table T[0..nb] (core/thresholds.hpp): how many of T[1..nb-1] are
// <= x, by binary search. Hand-written rather than std::upper_bound: it must run on a GPU, and
// on the host HISTGPU_HD gives each per-ISA kernel build its own copy.
template <class K> HISTGPU_HD std::int32_t search_bucket(K x, const K* t, std::int32_t nb) {
  std::int32_t lo = 1, count = nb - 1;  // first index in [1, nb) with t[i] > x
  while (count > 0) {
    const std::int32_t half = count / 2;
    if (t[lo + half] <= x) {
      lo += half + 1;
      count -= half + 1;
    } else {
      count = half;
    }
  }
  return lo - 1;
}

}  // namespace histgpu
