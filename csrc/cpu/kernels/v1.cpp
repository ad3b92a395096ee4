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

// ---- float32, vectorised -----------------------------------------------------------------
//
// Per block of at most kBlock values, with no table lookups (gathers cost about a cycle per
// element), no masks and no integer widening on the common path:
//  * bucket: TensorFlow's limits are 1e-12 * 1.1^i, so the bucket is about log_1.1(|x| / 1e-12),
//    computed from the exponent field and a polynomial in the mantissa; the guess is trusted where
//    its fraction is at least kGuessTolerance from an integer (the float32 arithmetic errs by less
//    than 2e-4 buckets; tests/core/test_v1_guess.py checks the floats around every limit), the
//    others are placed by the thresholds;
//  * exact sums, in float64 accumulators that cannot round: every value of the block whose
//    exponent field is at least e = emax - kWindow (emax: the block's largest) is a multiple of
//    the unit 2^(e - 150), its square (exact in float64) of 2^(2e - 300). A lane of sums stays
//    below 2^53 units. Squares are added to a big power of two C (so that Fast2Sum applies:
//    s = acc + v, err = v - (s - acc) is the exact rounding error) with the errors summed in a
//    second accumulator, which stays below 2^53 units; acc - C is exact at the end;
//  * counters: one increment per value, of an index computed in vector registers.
// A vector holding a value the window cannot take (NaN, an infinity, a nonzero value below the
// window) is done one value at a time instead (v1_one_by_one): rare in any real data.

// pos(y) = log_1.1(y / 1e-12) for y > 0: q = (E + kLogBias + p(f)) * kInvLog2Of1p1 + 1, where
// E is the exponent field, f the mantissa fraction and p(f) ~ log2(1 + f) (|error| < 1.5e-5).
// TensorFlow's limits: 775 negative ones (from -DBL_MAX), 0 at index 775, 1e-12 * 1.1^i for
// i < 774 and DBL_MAX after it: y >= 1e-12 has trunc(q) = #{positive limits <= y}.
constexpr float kLogBias = -87.13686286135165f;  // -log2(1e-12) minus the exponent bias 127
constexpr float kInvLog2Of1p1 = 7.272540897341713f;
constexpr float kPoly[6] = {1.4390930118679535e-05f, 1.4415920972824097f, -0.7072534561157227f,
                            0.4115614891052246f,     -0.18983244895935059f, 0.04392862692475319f};
constexpr float kGuessTolerance = 1.5e-3f;  // in buckets
constexpr int kZeroBucket = 775, kPositiveBuckets = 774;
// With at most 256 values per accumulator lane (kBlock / 8): sums stay below
// 256 * 2^(emax - 126) < 2^53 units for kWindow <= 20, the rounding errors of the squares below
// 256 * ulp(2C) / 2 < 2^53 units for kWindow <= 19.
constexpr int kWindow = 19;
static_assert(kBlock / 8 <= 256, "the window assumes at most 256 values per accumulator lane");

// The exact bucket of finite float32 x (the guess table and one threshold: v1_block's rule).
inline std::int32_t v1_exact_bucket(float x, const CountArgs<float>& a) {
  const std::uint32_t b = bits_of(x);
  const std::uint32_t key = (b & 0x80000000u) ? ~b : (b | 0x80000000u);
  std::int32_t g = a.guess_table[key >> (32 - v1_guess_bits<float>())];
  return g + (x >= a.thresholds[g + 1]);
}

// 2^e as a double, for the normal exponents the windows use (no libm call per block).
inline double pow2(int e) { return from_bits<double>(static_cast<std::uint64_t>(e + 1023) << 52); }

// d / 2^unit_exp for a non-negative double d that is a multiple of 2^unit_exp, exactly, from
// its bits (frexp and ldexp per lane and block cost about a tenth of the whole pass).
inline uint128 units_of(double d, int unit_exp) {
  const std::uint64_t b = bits_of(d);
  if (b == 0) return 0;
  const int field = static_cast<int>(b >> 52);  // the sign is clear
  const std::uint64_t m = (b & ((std::uint64_t(1) << 52) - 1)) | (field ? std::uint64_t(1) << 52 : 0);
  const int shift = (field ? field : 1) - 1075 - unit_exp;  // d = m * 2^(E - 1075)
  return shift >= 0 ? static_cast<uint128>(m) << shift : static_cast<uint128>(m >> -shift);  // only trailing zeros go
}

// The exact-sum window of a block: its smallest exponent field, units and the constant C.
struct SumWindow {
  int e;        // smallest exponent field in the window (>= 1)
  double big;   // C: a power of two above twice any lane's sum of squares
  explicit SumWindow(int emax) : e(std::max(emax - kWindow, 1)), big(pow2(2 * emax - 243)) {}
  // Adds the accumulator lanes to the bins: sums in units 2^(e - 150), squares (acc - C, and
  // the summed errors) in units 2^(2e - 300): the bins' own weights.
  void finish(const double* sum, const double* square, const double* error, int lanes, ExactBins<float>& bins) const {
    const double sum_unit = pow2(150 - e), square_unit = pow2(300 - 2 * e);
    std::int64_t s = 0;
    int128 sq = 0;
    for (int i = 0; i < lanes; ++i) {
      s += static_cast<std::int64_t>(sum[i] * sum_unit);
      sq += static_cast<int128>(units_of(square[i] - big, 2 * e - 300)) + static_cast<std::int64_t>(error[i] * square_unit);
    }
    bins.sum[e] += s;
    bins.sumsq[e] += static_cast<uint128>(sq);  // a sum of squares: never negative
  }
};

// Values [first, last) of a block one by one: counter index, range, exact sums.
inline void v1_one_by_one(const float* x, std::size_t first, std::size_t last, const CountArgs<float>& a,
                          std::uint32_t* idx, V1Acc<float>& acc, std::uint64_t& finite_count) {
  const std::uint32_t stride = static_cast<std::uint32_t>(a.nb) + 1, lane_mask = static_cast<std::uint32_t>(a.lanes - 1);
  RangeAcc<float>& r = acc.range;
  // The per-exponent bins count what they were given, so that a call none went to skips their fold.
  if (first < last && acc.fast.pending + (last - first) > FastExactBinsF32::kFoldEvery) fold_fast_bins(acc);
  acc.fast.pending += static_cast<std::uint32_t>(last - first);
  for (std::size_t i = first; i < last; ++i) {
    const std::uint32_t b = bits_of(x[i]), copy = (static_cast<std::uint32_t>(i) & lane_mask) * stride;
    if (!is_finite_bits<float>(b)) {
      count_nonfinite(x[i], r);
      idx[i] = copy + static_cast<std::uint32_t>(a.nb);  // "no bucket"
      continue;
    }
    ++finite_count;
    const std::uint32_t key = (b & 0x80000000u) ? ~b : (b | 0x80000000u);
    r.kmin = std::min(r.kmin, key);
    r.kmax = std::max(r.kmax, key);
    idx[i] = copy + static_cast<std::uint32_t>(v1_exact_bucket(x[i], a));
    add_fast_exact(acc.fast, b, 0);
  }
}

// Counter indices of the block come from the vector loop; this corrects the uncertain ones
// (bitmap `unsure`), then increments.
inline void v1_count_indices(const float* x, std::size_t n, const CountArgs<float>& a, std::uint32_t* idx,
                             const std::uint64_t* unsure, std::uint64_t* hist) {
  const std::uint32_t stride = static_cast<std::uint32_t>(a.nb) + 1, lane_mask = static_cast<std::uint32_t>(a.lanes - 1);
  for (std::size_t w = 0; w < (n + 63) / 64; ++w) {
    for (std::uint64_t m = unsure[w]; m; m &= m - 1) {
      const std::size_t i = w * 64 + static_cast<std::size_t>(__builtin_ctzll(m));
      idx[i] = (static_cast<std::uint32_t>(i) & lane_mask) * stride + static_cast<std::uint32_t>(v1_exact_bucket(x[i], a));
    }
  }
  std::uint64_t* __restrict h = hist;
#pragma GCC unroll 8
  for (std::size_t i = 0; i < n; ++i) ++h[idx[i]];
}

// The largest exponent field of a finite value among x[0..n).
inline int max_exponent_field(const float* x, std::size_t n) {
  std::size_t i = 0;
  std::uint32_t top = 0;
#if HISTGPU_HAVE_AVX512
  const __m512i exp_mask = _mm512_set1_epi32(0x7f800000);
  __m512i v = _mm512_setzero_si512();
  for (; i + 16 <= n; i += 16) {
    prefetch_ahead(x + i, 64);
    const __m512i e = _mm512_and_si512(_mm512_loadu_si512(x + i), exp_mask);
    v = _mm512_mask_max_epu32(v, _mm512_cmpneq_epi32_mask(e, exp_mask), v, e);
  }
  top = _mm512_reduce_max_epu32(v);
#elif HISTGPU_HAVE_AVX2
  const __m256i exp_mask = _mm256_set1_epi32(0x7f800000);
  __m256i v = _mm256_setzero_si256();
  for (; i + 8 <= n; i += 8) {
    prefetch_ahead(x + i, 32);
    const __m256i e = _mm256_and_si256(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(x + i)), exp_mask);
    v = _mm256_max_epu32(v, _mm256_andnot_si256(_mm256_cmpeq_epi32(e, exp_mask), e));
  }
  alignas(32) std::uint32_t lanes[8];
  _mm256_store_si256(reinterpret_cast<__m256i*>(lanes), v);
  for (std::uint32_t l : lanes) top = std::max(top, l);
#endif
  for (; i < n; ++i) {
    const std::uint32_t e = bits_of(x[i]) & 0x7f800000u;
    if (e != 0x7f800000u) top = std::max(top, e);
  }
  return static_cast<int>(top >> 23);
}

#if HISTGPU_HAVE_AVX512
void v1_block_f32x16(const float* x, std::size_t n, const CountArgs<float>& a, std::uint64_t* hist, V1Acc<float>& acc) {
  const SumWindow win(max_exponent_field(x, n));
  const std::uint32_t stride = static_cast<std::uint32_t>(a.nb) + 1;
  alignas(64) std::uint32_t copy[16];
  for (std::uint32_t l = 0; l < 16; ++l) copy[l] = (l & static_cast<std::uint32_t>(a.lanes - 1)) * stride;
  const __m512i copy_offset = _mm512_load_si512(copy);
  const __m512i sign = _mm512_set1_epi32(INT32_MIN), mant_mask = _mm512_set1_epi32(0x7fffff),
                one_bits = _mm512_set1_epi32(0x3f800000), abs_mask = _mm512_set1_epi32(0x7fffffff),
                ff = _mm512_set1_epi32(0xff), window = _mm512_set1_epi32(win.e);
  const __m512i zero_bucket = _mm512_set1_epi32(kZeroBucket), positive_base = _mm512_set1_epi32(kZeroBucket + 1);
  const __m512 half = _mm512_set1_ps(0.5f), top = _mm512_set1_ps(kPositiveBuckets + 0.5f),
               limit = _mm512_set1_ps(0.5f - kGuessTolerance), bias = _mm512_set1_ps(kLogBias),
               inv = _mm512_set1_ps(kInvLog2Of1p1), fone = _mm512_set1_ps(1.0f);
  __m512d sum0 = _mm512_setzero_pd(), sum1 = sum0, err0 = sum0, err1 = sum0;
  __m512d sq0 = _mm512_set1_pd(win.big), sq1 = sq0;
  RangeAcc<float>& r = acc.range;
  __m512i lo = _mm512_set1_epi32(static_cast<int>(r.kmin)), hi = _mm512_set1_epi32(static_cast<int>(r.kmax));
  alignas(64) std::uint32_t idx[kBlock];
  std::uint64_t unsure[kBlock / 64] = {};
  std::uint64_t finite_count = 0;
  std::size_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m512i b = _mm512_loadu_si512(x + i);
    const __m512i field = _mm512_and_si512(_mm512_srli_epi32(b, 23), ff);
    const __mmask16 zero = _mm512_testn_epi32_mask(b, abs_mask);
    // finite and in the window, or zero
    const __mmask16 fits = (_mm512_cmpge_epu32_mask(field, window) & _mm512_cmpneq_epi32_mask(field, ff)) | zero;
    if (fits != 0xffff) {
      v1_one_by_one(x, i, i + 16, a, idx, acc, finite_count);
      continue;
    }
    const __m512 xv = _mm512_castsi512_ps(b);
    const __m512i key = _mm512_xor_si512(b, _mm512_or_si512(_mm512_srai_epi32(b, 31), sign));
    lo = _mm512_min_epu32(lo, key);
    hi = _mm512_max_epu32(hi, key);
    // bucket guess (zeros: no positive limit below them)
    const __m512 f = _mm512_sub_ps(_mm512_castsi512_ps(_mm512_or_si512(_mm512_and_si512(b, mant_mask), one_bits)), fone);
    __m512 p = _mm512_set1_ps(kPoly[5]);
    for (int c = 4; c >= 0; --c) p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(kPoly[c]));
    __m512 q = _mm512_fmadd_ps(_mm512_add_ps(_mm512_add_ps(_mm512_cvtepi32_ps(field), bias), p), inv, fone);
    q = _mm512_mask_mov_ps(_mm512_min_ps(_mm512_max_ps(q, half), top), zero, half);
    const __m512i cnt = _mm512_cvttps_epi32(q);
    const __m512 off = _mm512_abs_ps(_mm512_sub_ps(_mm512_sub_ps(q, _mm512_cvtepi32_ps(cnt)), half));
    const __mmask16 sure = _mm512_cmp_ps_mask(off, limit, _CMP_LE_OQ);
    const __mmask16 negative = _mm512_cmp_ps_mask(xv, _mm512_setzero_ps(), _CMP_LT_OQ);
    const __m512i g = _mm512_mask_sub_epi32(_mm512_add_epi32(positive_base, cnt), negative, zero_bucket, cnt);
    _mm512_store_si512(idx + i, _mm512_add_epi32(g, copy_offset));
    const auto flags = static_cast<std::uint16_t>(~sure);  // bits i..i+15 of the bitmap
    std::memcpy(reinterpret_cast<char*>(unsure) + i / 8, &flags, sizeof flags);
    // exact sums
    const __m512d x0 = _mm512_cvtps_pd(_mm512_castps512_ps256(xv));
    const __m512d x1 = _mm512_cvtps_pd(_mm512_extractf32x8_ps(xv, 1));
    sum0 = _mm512_add_pd(sum0, x0);
    sum1 = _mm512_add_pd(sum1, x1);
    const __m512d v0 = _mm512_mul_pd(x0, x0), v1 = _mm512_mul_pd(x1, x1);
    const __m512d s0 = _mm512_add_pd(sq0, v0), s1 = _mm512_add_pd(sq1, v1);
    err0 = _mm512_add_pd(err0, _mm512_sub_pd(v0, _mm512_sub_pd(s0, sq0)));
    err1 = _mm512_add_pd(err1, _mm512_sub_pd(v1, _mm512_sub_pd(s1, sq1)));
    sq0 = s0;
    sq1 = s1;
    finite_count += 16;
  }
  v1_one_by_one(x, i, n, a, idx, acc, finite_count);
  r.kmin = std::min(r.kmin, static_cast<std::uint32_t>(_mm512_reduce_min_epu32(lo)));
  r.kmax = std::max(r.kmax, static_cast<std::uint32_t>(_mm512_reduce_max_epu32(hi)));
  r.num += finite_count;
  alignas(64) double sums[16], squares[16], errors[16];
  _mm512_store_pd(sums, sum0);
  _mm512_store_pd(sums + 8, sum1);
  _mm512_store_pd(squares, sq0);
  _mm512_store_pd(squares + 8, sq1);
  _mm512_store_pd(errors, err0);
  _mm512_store_pd(errors + 8, err1);
  win.finish(sums, squares, errors, 16, acc.sums);
  v1_count_indices(x, n, a, idx, unsure, hist);
}
#endif

#if HISTGPU_HAVE_AVX2
// The AVX2 form of v1_block_f32x16 (see there), 8 values at a time, in two loops over the
// block (it is in L1 by then), so that each keeps its constants in the 16 registers.
void v1_block_f32x8(const float* x, std::size_t n, const CountArgs<float>& a, std::uint64_t* hist, V1Acc<float>& acc) {
  const SumWindow win(max_exponent_field(x, n));
  RangeAcc<float>& r = acc.range;
  alignas(32) std::uint32_t idx[kBlock];
  std::uint64_t unsure[kBlock / 64] = {};
  std::uint8_t special[kBlock / 8];  // vectors done one by one
  std::uint64_t finite_count = 0;
  std::size_t i = 0;
  {  // bucket indices and the range
    const std::uint32_t stride = static_cast<std::uint32_t>(a.nb) + 1;
    alignas(32) std::uint32_t copy[8];
    for (std::uint32_t l = 0; l < 8; ++l) copy[l] = (l & static_cast<std::uint32_t>(a.lanes - 1)) * stride + kZeroBucket + 1;
    // constants as memory operands, not broadcasts
    alignas(32) static const float poly[6][8] = {
        {kPoly[0], kPoly[0], kPoly[0], kPoly[0], kPoly[0], kPoly[0], kPoly[0], kPoly[0]},
        {kPoly[1], kPoly[1], kPoly[1], kPoly[1], kPoly[1], kPoly[1], kPoly[1], kPoly[1]},
        {kPoly[2], kPoly[2], kPoly[2], kPoly[2], kPoly[2], kPoly[2], kPoly[2], kPoly[2]},
        {kPoly[3], kPoly[3], kPoly[3], kPoly[3], kPoly[3], kPoly[3], kPoly[3], kPoly[3]},
        {kPoly[4], kPoly[4], kPoly[4], kPoly[4], kPoly[4], kPoly[4], kPoly[4], kPoly[4]},
        {kPoly[5], kPoly[5], kPoly[5], kPoly[5], kPoly[5], kPoly[5], kPoly[5], kPoly[5]}};
    const __m256i base = _mm256_load_si256(reinterpret_cast<const __m256i*>(copy));  // lane copy + first positive bucket
    const __m256i sign = _mm256_set1_epi32(INT32_MIN), mant_mask = _mm256_set1_epi32(0x7fffff),
                  one_bits = _mm256_set1_epi32(0x3f800000), abs_mask = _mm256_set1_epi32(0x7fffffff),
                  ff = _mm256_set1_epi32(0xff), below = _mm256_set1_epi32(win.e - 1);
    const __m256 half = _mm256_set1_ps(0.5f), top = _mm256_set1_ps(kPositiveBuckets + 0.5f),
                 limit = _mm256_set1_ps(0.5f - kGuessTolerance), bias = _mm256_set1_ps(kLogBias),
                 inv = _mm256_set1_ps(kInvLog2Of1p1), fone = _mm256_set1_ps(1.0f);
    __m256i lo = _mm256_set1_epi32(static_cast<int>(r.kmin)), hi = _mm256_set1_epi32(static_cast<int>(r.kmax));
    for (; i + 8 <= n; i += 8) {
      const __m256i b = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x + i));
      const __m256i field = _mm256_and_si256(_mm256_srli_epi32(b, 23), ff);
      const __m256i zero = _mm256_cmpeq_epi32(_mm256_and_si256(b, abs_mask), _mm256_setzero_si256());
      // finite and in the window (fields are below 2^8: signed compares do), or zero
      const __m256i fits = _mm256_or_si256(
          _mm256_andnot_si256(_mm256_cmpeq_epi32(field, ff), _mm256_cmpgt_epi32(field, below)), zero);
      special[i / 8] = _mm256_movemask_ps(_mm256_castsi256_ps(fits)) != 0xff;
      if (special[i / 8]) {
        v1_one_by_one(x, i, i + 8, a, idx, acc, finite_count);
        continue;
      }
      const __m256i negative = _mm256_srai_epi32(b, 31);  // all ones where the sign is set
      lo = _mm256_min_epu32(lo, _mm256_xor_si256(b, _mm256_or_si256(negative, sign)));
      hi = _mm256_max_epu32(hi, _mm256_xor_si256(b, _mm256_or_si256(negative, sign)));
      const __m256 f = _mm256_sub_ps(_mm256_castsi256_ps(_mm256_or_si256(_mm256_and_si256(b, mant_mask), one_bits)), fone);
      __m256 p = _mm256_load_ps(poly[5]);
      for (int c = 4; c >= 0; --c) p = _mm256_fmadd_ps(p, f, _mm256_load_ps(poly[c]));
      __m256 q = _mm256_fmadd_ps(_mm256_add_ps(_mm256_add_ps(_mm256_cvtepi32_ps(field), bias), p), inv, fone);
      q = _mm256_blendv_ps(_mm256_min_ps(_mm256_max_ps(q, half), top), half, _mm256_castsi256_ps(zero));
      const __m256i cnt = _mm256_cvttps_epi32(q);
      const __m256 off = _mm256_and_ps(_mm256_sub_ps(_mm256_sub_ps(q, _mm256_cvtepi32_ps(cnt)), half),
                                       _mm256_castsi256_ps(abs_mask));
      const auto flags = static_cast<std::uint8_t>(~_mm256_movemask_ps(_mm256_cmp_ps(off, limit, _CMP_LE_OQ)));
      reinterpret_cast<std::uint8_t*>(unsure)[i / 8] = flags;  // bits i..i+7 of the bitmap
      // bucket: 776 + cnt, or 775 - cnt = 776 + ~cnt below zero (-0.0 counts as zero)
      const __m256i flip = _mm256_andnot_si256(zero, negative);
      _mm256_store_si256(reinterpret_cast<__m256i*>(idx + i), _mm256_add_epi32(base, _mm256_xor_si256(cnt, flip)));
      finite_count += 8;
    }
    alignas(32) std::uint32_t keys[8];
    _mm256_store_si256(reinterpret_cast<__m256i*>(keys), lo);
    for (std::uint32_t k : keys) r.kmin = std::min(r.kmin, k);
    _mm256_store_si256(reinterpret_cast<__m256i*>(keys), hi);
    for (std::uint32_t k : keys) r.kmax = std::max(r.kmax, k);
  }
  v1_one_by_one(x, i, n, a, idx, acc, finite_count);
  r.num += finite_count;
  {  // exact sums of the vectors not done one by one
    __m256d sum0 = _mm256_setzero_pd(), sum1 = sum0, err0 = sum0, err1 = sum0;
    __m256d sq0 = _mm256_set1_pd(win.big), sq1 = sq0;
    for (std::size_t j = 0; j + 8 <= n; j += 8) {
      if (special[j / 8]) continue;
      const __m256 xv = _mm256_loadu_ps(x + j);
      const __m256d x0 = _mm256_cvtps_pd(_mm256_castps256_ps128(xv));
      const __m256d x1 = _mm256_cvtps_pd(_mm256_extractf128_ps(xv, 1));
      sum0 = _mm256_add_pd(sum0, x0);
      sum1 = _mm256_add_pd(sum1, x1);
      const __m256d v0 = _mm256_mul_pd(x0, x0), v1 = _mm256_mul_pd(x1, x1);
      const __m256d s0 = _mm256_add_pd(sq0, v0), s1 = _mm256_add_pd(sq1, v1);
      err0 = _mm256_add_pd(err0, _mm256_sub_pd(v0, _mm256_sub_pd(s0, sq0)));
      err1 = _mm256_add_pd(err1, _mm256_sub_pd(v1, _mm256_sub_pd(s1, sq1)));
      sq0 = s0;
      sq1 = s1;
    }
    alignas(32) double sums[8], squares[8], errors[8];
    _mm256_store_pd(sums, sum0);
    _mm256_store_pd(sums + 4, sum1);
    _mm256_store_pd(squares, sq0);
    _mm256_store_pd(squares + 4, sq1);
    _mm256_store_pd(errors, err0);
    _mm256_store_pd(errors + 4, err1);
    win.finish(sums, squares, errors, 8, acc.sums);
  }
  v1_count_indices(x, n, a, idx, unsure, hist);
}
#endif

#if HISTGPU_HAVE_AVX512 || HISTGPU_HAVE_AVX2
void v1_f32_vector(const float* x, std::size_t n, const CountArgs<float>& a, std::uint64_t* hist, V1Acc<float>& acc) {
  for (std::size_t i = 0; i < n; i += kBlock) {
    const std::size_t m = std::min(kBlock, n - i);
#if HISTGPU_HAVE_AVX512
    v1_block_f32x16(x + i, m, a, hist, acc);
#else
    v1_block_f32x8(x + i, m, a, hist, acc);
#endif
  }
}
#endif

}  // namespace

void v1_f32(const float* x, std::size_t n, const CountArgs<float>& a, std::uint64_t* h, V1Acc<float>& acc) {
#if HISTGPU_HAVE_AVX512 || HISTGPU_HAVE_AVX2
  return v1_f32_vector(x, n, a, h, acc);
#endif
  v1_block<float>(x, n, a, h, acc);
}
void v1_f64(const double* x, std::size_t n, const CountArgs<double>& a, std::uint64_t* h, V1Acc<double>& acc) {
  v1_block<double>(x, n, a, h, acc);
}
}  // namespace histgpu::cpu::HISTGPU_ISA
