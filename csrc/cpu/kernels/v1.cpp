// v1 pass of the CPU engine (compiled per instruction set; see isa.hpp): TensorFlow's fixed
// limits, the range, non-finite counts and exact sums, in one read.
#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstring>
#include <limits>

#include "core/thresholds.hpp"
#include "cpu/kernels/isa.hpp"

namespace histgpu::cpu::HISTGPU_ISA {
namespace {


// x = m * 2^(E - bias): add the signed m and m*m into the bins of E (core/exact_sum.hpp).
template <class K> inline void add_exact(ExactBins<K>& bins, K x) {
  using B = FloatBits<K>;
  using Key = KeyOf<K>;
  const Key u = bits_of(x);
  const int field = static_cast<int>((u & B::kExpMask) >> B::kMantBits);
  const Key frac = u & ((Key(1) << B::kMantBits) - 1);
  const int e = field ? field : 1;
  const Key m = field ? (frac | (Key(1) << B::kMantBits)) : frac;
  bins.sum[e] += (u & B::kSign) ? -static_cast<int128>(m) : static_cast<int128>(m);
  bins.sumsq[e] += static_cast<uint128>(m) * m;
  if constexpr (sizeof(K) == 8) {
    if (++bins.pending == ExactBins<K>::kFoldSquaresEvery) bins.fold_squares();
  }
}


// A finite float32 with bits b is m * 2^(e - 150); these add m (signed) or m * m to the fast
// per-exponent bins (copy `copy`).
inline void add_fast_sum(FastExactBinsF32& f, std::uint32_t b, std::size_t copy) {
  const std::uint32_t field = (b >> 23) & 0xffu;
  const std::int64_t m = (b & 0x7fffffu) | (field ? 0x800000u : 0u);
  f.sum[copy][field ? field : 1u] += (b >> 31) ? -m : m;
}
inline void add_fast_square(FastExactBinsF32& f, std::uint32_t b, std::size_t copy) {
  const std::uint32_t field = (b >> 23) & 0xffu;
  const std::uint64_t m = (b & 0x7fffffu) | (field ? 0x800000u : 0u);
  f.sumsq[copy][field ? field : 1u] += m * m;
}
inline void add_fast_exact(FastExactBinsF32& f, std::uint32_t b, std::size_t copy) {
  add_fast_sum(f, b, copy);
  add_fast_square(f, b, copy);
}

template <class K> inline void count_nonfinite(K x, RangeAcc<K>& r) {
  if (std::isnan(x)) ++r.nan;
  else (x > 0 ? r.posinf : r.neginf) += 1;
}

template <class K> void v1_block(const K* x, std::size_t n, const CountArgs<K>& a,
                                 std::uint64_t* hist, V1Acc<K>& acc) {
  using B = FloatBits<K>;
  using Key = KeyOf<K>;
  constexpr int kShift = static_cast<int>(sizeof(Key) * 8) - v1_guess_bits<K>();
  constexpr bool kFastBins = sizeof(K) == 4;
  if constexpr (kFastBins) {
    if (acc.fast.pending + n > FastExactBinsF32::kFoldEvery) fold_fast_bins(acc);
    acc.fast.pending += static_cast<std::uint32_t>(n);
  }
  // Locals (and __restrict) so that the counter stores below cannot force reloads.
  const K* __restrict t = a.thresholds;
  const std::int16_t* __restrict guess = a.guess_table;
  std::uint64_t* __restrict counts = hist;
  const std::size_t stride = static_cast<std::size_t>(a.nb) + 1;
  const std::size_t lane_mask = static_cast<std::size_t>(a.lanes - 1);
  RangeAcc<K>& r = acc.range;
  Key lo = r.kmin, hi = r.kmax;
  std::uint64_t finite = 0;
  for (std::size_t i = 0; i < n; ++i) {
    const K xi = x[i];
    const Key b = bits_of(xi);
    if (!is_finite_bits<K>(b)) {
      count_nonfinite(xi, r);
      continue;
    }
    ++finite;
    const Key key = (b & B::kSign) ? ~b : (b | B::kSign);
    lo = std::min(lo, key);
    hi = std::max(hi, key);
    // The guess is the bucket of the smallest value with this key prefix; a prefix spans
    // less than one 1.1x step, so one step up is all it can take.
    std::int32_t g = guess[key >> kShift];
    g += xi >= t[g + 1];
    counts[(i & lane_mask) * stride + g] += 1;
    if constexpr (kFastBins) add_fast_exact(acc.fast, b, i & (FastExactBinsF32::kCopies - 1));
    else add_exact(acc.sums, xi);
  }
  r.num += finite;
  r.kmin = lo;
  r.kmax = hi;
}

#if HISTGPU_HAVE_AVX512
// Exact sums of one block of float32 values in registers. Values whose exponent is within 28
// of the block's largest (window base Ls = Emax - 28) add m << (E - Ls) into 64-bit lanes;
// squares split m = a * 2^12 + b and add a^2 << 24, 2ab << 12 and b^2, each shifted by
// 2 (E - Lq) with Lq = Emax - 13, into three more. Each lane stays below 2^52 per value and
// 2^63 per block of kBlock values, so nothing can overflow; zeros fit any window. The few
// values below a window (tiny next to the block's largest) are left to the caller, which
// adds them to the per-exponent bins one by one.
struct ExactWindowsF32x16 {
  int ls = 1, lq = 1;
  __m512i sum[2], aa[2], ab[2], bb[2];

  ExactWindowsF32x16(const float* x, std::size_t n) {
    const __m512i exp_mask = _mm512_set1_epi32(0x7f800000);
    __m512i emax = _mm512_setzero_si512();
    for (std::size_t i = 0; i + 16 <= n; i += 16) {
      const __m512i e = _mm512_and_si512(_mm512_loadu_si512(x + i), exp_mask);
      emax = _mm512_mask_max_epu32(emax, _mm512_cmpneq_epi32_mask(e, exp_mask), emax, e);
    }
    const int top = static_cast<int>(_mm512_reduce_max_epu32(emax) >> 23);
    ls = std::max(top - 28, 1);
    lq = std::max(top - 13, 1);
    for (int h = 0; h < 2; ++h) sum[h] = aa[h] = ab[h] = bb[h] = _mm512_setzero_si512();
  }

  // Adds the lanes it can; returns (sum lanes left out) | (square lanes left out) << 16.
  inline std::uint32_t add(__m512i exponent, __m512i mant, __mmask16 negative, __mmask16 finite) {
    const __m512i zero = _mm512_setzero_si512();
    const __mmask16 is_zero = _mm512_cmpeq_epi32_mask(mant, zero);
    const __m512i s = _mm512_sub_epi32(exponent, _mm512_set1_epi32(ls));
    const __m512i s2 = _mm512_sub_epi32(exponent, _mm512_set1_epi32(lq));
    const __mmask16 in_sum = finite & (_mm512_cmpge_epi32_mask(s, zero) | is_zero);
    const __mmask16 in_sq = finite & (_mm512_cmpge_epi32_mask(s2, zero) | is_zero);
    const __m512i a = _mm512_srli_epi32(mant, 12);
    const __m512i b = _mm512_and_si512(mant, _mm512_set1_epi32(0xfff));
    const __m512i twice_s2 = _mm512_add_epi32(s2, s2);
    for (int h = 0; h < 2; ++h) {
      const auto half = [h](__m512i v) { return h ? _mm512_extracti64x4_epi64(v, 1) : _mm512_castsi512_si256(v); };
      const __mmask8 ms = static_cast<__mmask8>(in_sum >> (8 * h));
      const __mmask8 mq = static_cast<__mmask8>(in_sq >> (8 * h));
      const __mmask8 neg = static_cast<__mmask8>(negative >> (8 * h));
      // negative shift counts sign-extend to huge unsigned counts, which shift in zeros
      __m512i c = _mm512_sllv_epi64(_mm512_cvtepu32_epi64(half(mant)), _mm512_cvtepi32_epi64(half(s)));
      c = _mm512_mask_sub_epi64(c, neg, zero, c);
      sum[h] = _mm512_mask_add_epi64(sum[h], ms, sum[h], c);
      const __m512i a64 = _mm512_cvtepu32_epi64(half(a)), b64 = _mm512_cvtepu32_epi64(half(b));
      const __m512i sh = _mm512_cvtepi32_epi64(half(twice_s2));
      aa[h] = _mm512_mask_add_epi64(aa[h], mq, aa[h], _mm512_sllv_epi64(_mm512_mul_epu32(a64, a64), sh));
      ab[h] = _mm512_mask_add_epi64(ab[h], mq, ab[h],
                                    _mm512_sllv_epi64(_mm512_slli_epi64(_mm512_mul_epu32(a64, b64), 1), sh));
      bb[h] = _mm512_mask_add_epi64(bb[h], mq, bb[h], _mm512_sllv_epi64(_mm512_mul_epu32(b64, b64), sh));
    }
    return static_cast<std::uint32_t>(finite & ~in_sum) | static_cast<std::uint32_t>(finite & ~in_sq) << 16;
  }

  void finish(ExactBins<float>& bins) const {
    const auto total = [](const __m512i v[2]) {
      return _mm512_reduce_add_epi64(v[0]) + _mm512_reduce_add_epi64(v[1]);
    };
    bins.sum[ls] += static_cast<int128>(total(sum));
    bins.sumsq[lq] += (static_cast<uint128>(total(aa)) << 24) + (static_cast<uint128>(total(ab)) << 12) +
                      static_cast<uint128>(total(bb));
  }
};

// float32 v1, 16 values at a time in vector registers: key and min/max, the bucket (gathers
// from the guess table and the thresholds; non-finite values go to the "no bucket" counter),
// exact sums in ExactWindowsF32x16; only the counter updates, which have no vector form, are
// scalar.
void v1_f32_avx512(const float* x, std::size_t n, const CountArgs<float>& a, std::uint64_t* hist,
                   V1Acc<float>& acc) {
  if (acc.fast.pending + n > FastExactBinsF32::kFoldEvery) fold_fast_bins(acc);
  acc.fast.pending += static_cast<std::uint32_t>(n);
  const float* __restrict t = a.thresholds;
  const std::int32_t* __restrict guess32 = a.guess_table32;
  std::uint64_t* __restrict counts = hist;
  const std::int32_t stride = a.nb + 1;
  RangeAcc<float>& r = acc.range;
  ExactWindowsF32x16 sums(x, n);

  alignas(64) std::int32_t copy_count[16];
  for (int l = 0; l < 16; ++l) copy_count[l] = (l & (a.lanes - 1)) * stride;
  const __m512i copy_offset = _mm512_load_si512(copy_count);
  const __m512i exp_mask = _mm512_set1_epi32(0x7f800000), sign = _mm512_set1_epi32(INT32_MIN);
  const __m512i mant_mask = _mm512_set1_epi32(0x7fffff), implicit = _mm512_set1_epi32(0x800000);
  const __m512i no_bucket = _mm512_set1_epi32(1 << v1_guess_bits<float>());
  const __m512i one = _mm512_set1_epi32(1), zero = _mm512_setzero_si512();
  __m512i lo = _mm512_set1_epi32(static_cast<int>(r.kmin));
  __m512i hi = _mm512_set1_epi32(static_cast<int>(r.kmax));
  alignas(64) std::int32_t slot[16];
  std::uint64_t finite_count = 0;
  std::size_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m512i b = _mm512_loadu_si512(x + i);
    const __mmask16 finite = _mm512_cmpneq_epi32_mask(_mm512_and_si512(b, exp_mask), exp_mask);
    const __m512i key = _mm512_xor_si512(b, _mm512_or_si512(_mm512_srai_epi32(b, 31), sign));
    lo = _mm512_mask_min_epu32(lo, finite, lo, key);
    hi = _mm512_mask_max_epu32(hi, finite, hi, key);
    const __m512i field = _mm512_srli_epi32(_mm512_and_si512(b, exp_mask), 23);
    const __mmask16 normal = _mm512_cmpneq_epi32_mask(field, zero);
    const __m512i mant = _mm512_mask_or_epi32(_mm512_and_si512(b, mant_mask), normal,
                                              _mm512_and_si512(b, mant_mask), implicit);
    const std::uint32_t left_out =
        sums.add(_mm512_max_epu32(field, one), mant, _mm512_movepi32_mask(b), finite);
    // Bucket: the guess for the key's prefix, one step up where x reaches the next threshold.
    const __m512i prefix = _mm512_mask_mov_epi32(no_bucket, finite,
                                                 _mm512_srli_epi32(key, 32 - v1_guess_bits<float>()));
    __m512i g = _mm512_i32gather_epi32(prefix, guess32, 4);
    const __m512 next = _mm512_i32gather_ps(_mm512_add_epi32(g, one), t, 4);
    const __m512 xc = _mm512_maskz_mov_ps(finite, _mm512_castsi512_ps(b));  // left out: 0 < inf
    g = _mm512_mask_add_epi32(g, _mm512_cmp_ps_mask(xc, next, _CMP_GE_OQ), g, one);
    _mm512_store_si512(slot, _mm512_add_epi32(g, copy_offset));
    if (finite != 0xffff)
      for (unsigned m = ~unsigned(finite) & 0xffffu; m; m &= m - 1) count_nonfinite(x[i + __builtin_ctz(m)], r);
    if (left_out) {  // values tiny next to the block's largest
      std::uint32_t u[16];
      std::memcpy(u, x + i, sizeof u);
      for (unsigned m = left_out & 0xffffu; m; m &= m - 1) add_fast_sum(acc.fast, u[__builtin_ctz(m)], 0);
      for (unsigned m = left_out >> 16; m; m &= m - 1) add_fast_square(acc.fast, u[__builtin_ctz(m)], 0);
    }
    finite_count += static_cast<unsigned>(__builtin_popcount(finite));
    __asm__ __volatile__("" : : "r"(slot) : "memory");  // read back through memory (see v2)
    for (int l = 0; l < 16; ++l) counts[slot[l]] += 1;
  }
  sums.finish(acc.sums);
  r.num += finite_count;
  r.kmin = static_cast<std::uint32_t>(_mm512_reduce_min_epu32(lo));
  r.kmax = static_cast<std::uint32_t>(_mm512_reduce_max_epu32(hi));
  acc.fast.pending -= static_cast<std::uint32_t>(n - i);  // v1_block adds the tail again
  if (i < n) v1_block<float>(x + i, n - i, a, hist, acc);
}
#endif

}  // namespace

void v1_f32(const float* x, std::size_t n, const CountArgs<float>& a, std::uint64_t* h, V1Acc<float>& acc) {
#if HISTGPU_HAVE_AVX512
  return v1_f32_avx512(x, n, a, h, acc);
#endif
  v1_block<float>(x, n, a, h, acc);
}
void v1_f64(const double* x, std::size_t n, const CountArgs<double>& a, std::uint64_t* h, V1Acc<double>& acc) {
  v1_block<double>(x, n, a, h, acc);
}
}  // namespace histgpu::cpu::HISTGPU_ISA
