// The v1 pass, one read: TensorFlow's default buckets (core/thresholds.hpp), the range, the
// non-finite counts and the exact sums of values and squares.
//
// Buckets come from a guess table in shared memory (policy.hpp): a 13-bit prefix of the
// ordered key gives the first bucket of the prefix and the float32 threshold of the next, so
// a float32 value costs one table load and one compare. float64 values look their float32
// rounding up, which lies within one bucket of them, and settle with float64 compares.
#pragma once
#include "core/ordered.hpp"
#include "cuda/block/exact_sums.cuh"
#include "cuda/block/range_state.cuh"
#include "cuda/device_types.hpp"
#include "cuda/markers.hpp"
#include "cuda/policy.hpp"
#include "cuda/simt.hpp"

namespace histgpu::cuda {

template <class K> struct V1Pass;

// Shared memory of the v1 pass: guess table, counters and (float64) thresholds.
template <class K> HISTGPU_HD_CONSTEXPR std::uint64_t v1_smem_bytes(int nb) {
  const std::uint64_t guess = kV1GuessEntries * sizeof(V1Guess);
  const std::uint64_t counters = align16(static_cast<std::uint64_t>(nb) * 4);
  const std::uint64_t thr = sizeof(K) == 8 ? align16((static_cast<std::uint64_t>(nb) + 2) * 8) : 0;
  return guess + counters + thr;
}

template <class K> struct V1Common {
  static constexpr bool kVector4 = false;
  const V1Guess* guess;
  simt::u32* counters;
  const double* T64;
  simt::u64* bins;
  int nb;
  RangeState<K> st;
  ExactWindow<K> sums;

  HISTGPU_DEVICE void init(unsigned char*, int) {
    st.reset();
    sums.reset();
  }
  HISTGPU_DEVICE void begin(const LaunchArgs& a, const DevTensor& t, unsigned char* smem) {
    nb = a.nb;
    V1Guess* g = reinterpret_cast<V1Guess*>(smem);
    counters = reinterpret_cast<simt::u32*>(smem + kV1GuessEntries * sizeof(V1Guess));
    for (int i = simt::thread_rank(); i < static_cast<int>(kV1GuessEntries); i += simt::block_size())
      g[i] = a.v1_guess[i];
    for (int i = simt::thread_rank(); i < nb; i += simt::block_size()) counters[i] = 0;
    guess = g;
    if constexpr (sizeof(K) == 8) {
      double* t64 = reinterpret_cast<double*>(reinterpret_cast<unsigned char*>(counters) +
                                              align16(static_cast<std::uint64_t>(nb) * 4));
      for (int i = simt::thread_rank(); i < nb + 2; i += simt::block_size()) t64[i] = a.v1_thresholds64[i];
      T64 = t64;
    }
    bins = a.bins + t.bins_off;
  }
  HISTGPU_DEVICE bool skip() const { return false; }
  HISTGPU_DEVICE void end_chunk(const LaunchArgs&, const DevTensor&, int) { sums.flush(bins); }
  HISTGPU_DEVICE void flush(const LaunchArgs& a, const DevTensor& t, int ti) {
    st.flush(&a.stats[ti]);
    simt::u64* gcounts = a.counts + t.counts_off;
    for (int i = simt::thread_rank(); i < nb; i += simt::block_size())
      if (counters[i]) simt::atomic_add(&gcounts[i], static_cast<simt::u64>(counters[i]));
  }
};

template <> struct V1Pass<float> : V1Common<float> {
  static constexpr bool kVector4 = true;  // for_contiguous hands over 4 values at a time
  unsigned char* smem;
  HISTGPU_DEVICE void init(unsigned char* s, int bytes) {
    smem = s;
    V1Common<float>::init(s, bytes);
  }
  HISTGPU_DEVICE void begin(const LaunchArgs& a, const DevTensor& t, int) { V1Common<float>::begin(a, t, smem); }

  // The bucket and the range of a finite value.
  HISTGPU_DEVICE void count(float x, simt::u32 b) {
    const simt::u32 key = b ^ (static_cast<simt::u32>(static_cast<std::int32_t>(b) >> 31) | 0x80000000u);
    st.add_key(key);
    const V1Guess gs = guess[key >> (32 - kV1GuessBits)];
    simt::atomic_add(&counters[gs.bucket + (x >= gs.next ? 1 : 0)], 1u);
  }

  HISTGPU_DEVICE void operator()(float x, bool valid) {
    if (!valid) return;
    const simt::u32 b = bits_of(x);
    const simt::u32 u = b & 0x7fffffffu;
    if (u >= 0x7f800000u) {  // NaN or +-Inf: counted, left out of everything else
      HISTGPU_MARK_RARE();
      st.add_nonfinite(b);
      return;
    }
    count(x, b);
    if (u - sums.lo_bits() < ExactWindow<float>::kSpan) sums.add_in_window(x, u);
    else sums.add(b, bins);
  }

  // Four values: one test whether all of them are finite zeros or inside the sum window (nearly
  // always), then the fast path; otherwise each goes the general way.
  HISTGPU_DEVICE void add4(const float (&x)[4], bool valid) {
    if (!valid) return;
    const simt::u32 lo = sums.lo_bits();
    simt::u32 b[4], u[4];
    bool fast = true;
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      b[i] = bits_of(x[i]);
      u[i] = b[i] & 0x7fffffffu;
      fast &= (u[i] - lo < ExactWindow<float>::kSpan) | (u[i] == 0);
    }
    if (!fast) {
      HISTGPU_MARK_RARE();
#pragma unroll
      for (int i = 0; i < 4; ++i) (*this)(x[i], true);
      return;
    }
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      count(x[i], b[i]);
      sums.add_in_window(x[i], u[i]);
    }
  }
};

template <> struct V1Pass<double> : V1Common<double> {
  unsigned char* smem;
  HISTGPU_DEVICE void init(unsigned char* s, int bytes) {
    smem = s;
    V1Common<double>::init(s, bytes);
  }
  HISTGPU_DEVICE void begin(const LaunchArgs& a, const DevTensor& t, int) { V1Common<double>::begin(a, t, smem); }
  HISTGPU_DEVICE void operator()(double x, bool valid) {
    if (!valid) return;
    const simt::u64 b = bits_of(x);
    const simt::u64 u = b & 0x7fffffffffffffffull;
    if (u >= 0x7ff0000000000000ull) {
      HISTGPU_MARK_RARE();
      st.add_nonfinite(b);
      return;
    }
    st.add_key(ordered_key(x));
    // The float32 rounding of x is within one bucket of x (limits are 1.1x apart): start one
    // below its guess and step up at most three times.
    const float xf = static_cast<float>(x);
    const V1Guess gs = guess[ordered_key(xf) >> (32 - kV1GuessBits)];
    int g = gs.bucket > 0 ? gs.bucket - 1 : 0;
#pragma unroll
    for (int step = 0; step < 3; ++step) g += x >= T64[g + 1] ? 1 : 0;
    simt::atomic_add(&counters[g], 1u);
    sums.add(b, bins);
  }
};

}  // namespace histgpu::cuda
