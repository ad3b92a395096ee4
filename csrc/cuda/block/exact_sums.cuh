// Exact sums of values and of their squares, per thread in registers.
//
// A finite x = m * 2^(e - bias) with e = max(exponent field, 1) (core/exact_sum.hpp). A thread
// keeps a window of kWindow exponents [base, base + kWindow) in fixed point: the sum of
// +-m << (e - base) and the sum of m^2 << 2 (e - base), in two's complement words. Values in
// the window cost a few integer instructions; a value above the window moves it up (after
// adding the window into the tensor's bins), one below it -- rare: it is 2^16 times smaller
// than the window's top -- goes into the bins directly. Zeros add nothing. Bins (device_types)
// hold the same fixed-point sums per base exponent; the host folds them into core's BigFixed.
#pragma once
#include "core/ordered.hpp"
#include "cuda/block/atomics.cuh"
#include "cuda/device_types.hpp"
#include "cuda/markers.hpp"
#include "cuda/simt.hpp"

namespace histgpu::cuda {

constexpr int kWindow = 16;      // exponents per window: squares shift by < 32 bits
constexpr int kWindowHeadroom = 3;  // a new window sits this many exponents below its top

template <class K> struct ExactWindow;

// float32: m < 2^24. In the window, the sum is kept in a double: every value there is a multiple
// of 2^(base - 150) below 2^(base + 16 - 126), so up to 2^13 of them add exactly (a thread adds
// at most kChunk / 512 = 128 per chunk, then flushes). Squares m^2 << 2 (e - base) < 2^78 go into
// three 32-bit words with one carry chain.
template <> struct ExactWindow<float> {
  static constexpr int kNone = 255;  // no window yet
  // Windows end below exponent field 255, so NaN and infinities are never "in" one.
  static constexpr int kTopBase = 255 - kWindow;
  int base;
  simt::u32 lo;  // base << 23, or 2^31 without a window (then (u - lo) < span for no u)
  double sum;
  simt::u32 sq0, sq1, sq2;

  HISTGPU_DEVICE void reset() {
    base = kNone;
    lo = 0x80000000u;
    sum = 0.0;
    sq0 = sq1 = sq2 = 0;
  }
  // The window's exponent range in terms of |x|'s bits: in window iff (u - lo) < span.
  HISTGPU_DEVICE simt::u32 lo_bits() const { return lo; }
  static constexpr simt::u32 kSpan = static_cast<simt::u32>(kWindow) << 23;

  // Adds x (bits b, |x| bits u) that lies in the window, or is zero (m = 0 then adds nothing).
  HISTGPU_DEVICE void add_in_window(float x, simt::u32 u) {
    sum += static_cast<double>(x);
    const simt::u32 m = u ? ((u & 0x7fffffu) | 0x800000u) : 0u;
    const simt::u32 s = (2u * ((u >> 23) - static_cast<simt::u32>(base))) & 31u;  // 2 (e - base) < 32
    const simt::u64 q = static_cast<simt::u64>(m) * m;  // < 2^48
    const simt::u32 lo = static_cast<simt::u32>(q), hi = static_cast<simt::u32>(q >> 32);
    simt::add3_words(sq0, sq1, sq2, lo << s, simt::funnel_left(lo, hi, s), simt::funnel_left(hi, 0u, s));
  }

  HISTGPU_DEVICE void flush(simt::u64* bins) {
    if (base == kNone || (sum == 0.0 && (sq0 | sq1 | sq2) == 0)) return;
    simt::u64* bin = bins + static_cast<simt::u64>(base) * kBinWords;
    // sum is an exact multiple of 2^(base - 150) below 2^(base - 103): an integer below 2^47 there
    const long long units = static_cast<long long>(sum * simt::pow2(150 - base));
    const simt::u64 s[kSumWords] = {static_cast<simt::u64>(units), units < 0 ? ~0ull : 0ull};
    const simt::u64 q[kSqWords] = {(static_cast<simt::u64>(sq1) << 32) | sq0, sq2, 0, 0};
    atomic_add_words<kSumWords>(bin, s);
    atomic_add_words<kSqWords>(bin + kSumWords, q);
    sum = 0.0;
    sq0 = sq1 = sq2 = 0;
  }

  // Any finite x: moves the window up when x lies above it; a value below it goes into the
  // bins directly.
  HISTGPU_DEVICE void add(simt::u32 b, simt::u64* bins) {
    const simt::u32 u = b & 0x7fffffffu;
    if (u == 0) return;
    const int e = u >> 23 ? static_cast<int>(u >> 23) : 1;
    if (base == kNone || e >= base + kWindow) {
      HISTGPU_MARK_RARE();
      flush(bins);
      base = e - (kWindow - 1 - kWindowHeadroom);
      base = base < 1 ? 1 : (base > kTopBase ? kTopBase : base);
      lo = static_cast<simt::u32>(base) << 23;
    }
    if (e >= base && (u >> 23) != 0) {
      add_in_window(from_bits<float>(b), u);
      return;
    }
    // Below the window, or subnormal: m * 2^(e - bias) into bin e as it is.
    HISTGPU_MARK_RARE();
    const simt::u64 m = (u & 0x7fffffu) | ((u >> 23) ? 0x800000u : 0u);
    simt::u64* bin = bins + static_cast<simt::u64>(e) * kBinWords;
    const simt::u64 sv[kSumWords] = {(b >> 31) ? ~m + 1 : m, (b >> 31) ? ~0ull : 0ull};
    const simt::u64 q[kSqWords] = {m * m, 0, 0, 0};
    atomic_add_words<kSumWords>(bin, sv);
    atomic_add_words<kSqWords>(bin + kSumWords, q);
  }
};

// float64: m < 2^53. Sum terms < 2^68 in an int128; squares < 2^136 in 192 bits.
template <> struct ExactWindow<double> {
  using u128 = unsigned __int128;
  static constexpr int kNone = -1;
  int base;
  __int128 sum;
  u128 sq_lo;
  simt::u64 sq_hi;

  HISTGPU_DEVICE void reset() {
    base = kNone;
    sum = 0;
    sq_lo = 0;
    sq_hi = 0;
  }

  HISTGPU_DEVICE void add_in_window(simt::u64 b, simt::u64 u, int e) {
    const int d = e - base;
    const simt::u64 m = (u & 0xfffffffffffffull) | 0x10000000000000ull;
    const __int128 t = static_cast<__int128>(static_cast<u128>(m) << d);
    sum += (b >> 63) ? -t : t;
    const u128 q = static_cast<u128>(m) * m;  // < 2^106
    const int s = 2 * d;                       // < 32
    const u128 lo = q << s;
    const simt::u64 hi = s ? static_cast<simt::u64>(q >> (128 - s)) : 0;
    const u128 old = sq_lo;
    sq_lo += lo;
    sq_hi += hi + (sq_lo < old ? 1u : 0u);
  }

  HISTGPU_DEVICE void flush(simt::u64* bins) {
    if (base == kNone || (sum == 0 && sq_lo == 0 && sq_hi == 0)) return;
    simt::u64* bin = bins + static_cast<simt::u64>(base) * kBinWords;
    const u128 us = static_cast<u128>(sum);
    const simt::u64 s[kSumWords] = {static_cast<simt::u64>(us), static_cast<simt::u64>(us >> 64)};
    const simt::u64 q[kSqWords] = {static_cast<simt::u64>(sq_lo), static_cast<simt::u64>(sq_lo >> 64), sq_hi, 0};
    atomic_add_words<kSumWords>(bin, s);
    atomic_add_words<kSqWords>(bin + kSumWords, q);
    sum = 0;
    sq_lo = 0;
    sq_hi = 0;
  }

  HISTGPU_DEVICE void add(simt::u64 b, simt::u64* bins) {
    const simt::u64 u = b & 0x7fffffffffffffffull;
    if (u == 0) return;
    const int field = static_cast<int>(u >> 52);
    const int e = field ? field : 1;
    if (base == kNone || e >= base + kWindow) {
      HISTGPU_MARK_RARE();
      flush(bins);
      base = e - (kWindow - 1 - kWindowHeadroom);
      base = base < 1 ? 1 : base;
    }
    if (e >= base && field != 0) {
      add_in_window(b, u, e);
      return;
    }
    HISTGPU_MARK_RARE();
    const simt::u64 m = (u & 0xfffffffffffffull) | (field ? 0x10000000000000ull : 0ull);
    simt::u64* bin = bins + static_cast<simt::u64>(e) * kBinWords;
    const u128 sm = (b >> 63) ? ~static_cast<u128>(m) + 1 : static_cast<u128>(m);
    const u128 q = static_cast<u128>(m) * m;
    const simt::u64 s[kSumWords] = {static_cast<simt::u64>(sm), static_cast<simt::u64>(sm >> 64)};
    const simt::u64 qq[kSqWords] = {static_cast<simt::u64>(q), static_cast<simt::u64>(q >> 64), 0, 0};
    atomic_add_words<kSumWords>(bin, s);
    atomic_add_words<kSqWords>(bin + kSumWords, qq);
  }
};

}  // namespace histgpu::cuda
