// CPU inner loops. Compiled once per instruction set with -DHISTGPU_ISA=<name>; everything
// here lives in namespace histgpu::cpu::<name>. Plain loops are written so that the compiler
// vectorises them for the target; the AVX-512 build adds a hand-vectorised v2 count path.
#include <algorithm>
#include <stdexcept>
#include <type_traits>
#include <cfloat>
#include <cmath>
#include <cstring>
#include <limits>

#include "core/bucket_search.hpp"
#include "core/thresholds.hpp"
#include "cpu/kernels.hpp"

#if defined(__AVX512F__) && defined(__AVX512DQ__)
#include <immintrin.h>
#define HISTGPU_HAVE_AVX512 1
#elif defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#define HISTGPU_HAVE_AVX2 1
#endif

#ifndef HISTGPU_ISA
#error "compile with -DHISTGPU_ISA=<isa name>"
#endif

namespace histgpu::cpu::HISTGPU_ISA {
namespace {

template <class K> using KeyOf = typename FloatBits<K>::UInt;

// ---- range pass --------------------------------------------------------------------------

template <class K> void range_block(const K* x, std::size_t n, RangeAcc<K>& acc) {
  using B = FloatBits<K>;
  using Key = KeyOf<K>;
  using SKey = std::make_signed_t<Key>;
  constexpr int kTop = static_cast<int>(sizeof(Key) * 8) - 1;
  using AliasKey __attribute__((may_alias)) = Key;
  const AliasKey* bits = reinterpret_cast<const AliasKey*>(x);
  // Fast path, branch-free so that it vectorises: min/max of all keys, and the largest
  // magnitude bit pattern, which reaches the exponent mask only if a value is NaN or Inf.
  Key lo = acc.kmin, hi = acc.kmax, top = 0;
  for (std::size_t i = 0; i < n; ++i) {
    const Key b = bits[i];
    const Key key = b ^ (static_cast<Key>(static_cast<SKey>(b) >> kTop) | B::kSign);
    lo = std::min(lo, key);
    hi = std::max(hi, key);
    top = std::max(top, static_cast<Key>(b & ~B::kSign));
  }
  if (top < B::kExpMask) {
    acc.kmin = lo;
    acc.kmax = hi;
    acc.num += n;
    return;
  }
  // Rare: the block holds NaN or Inf. Again, leaving them out, and say which kind they are.
  lo = acc.kmin;
  hi = acc.kmax;
  for (std::size_t i = 0; i < n; ++i) {
    const K v = x[i];
    const Key b = bits[i];
    if (is_finite_bits<K>(b)) {
      const Key key = b ^ (static_cast<Key>(static_cast<SKey>(b) >> kTop) | B::kSign);
      lo = std::min(lo, key);
      hi = std::max(hi, key);
      ++acc.num;
    } else if (std::isnan(v)) {
      ++acc.nan;
    } else {
      (v > 0 ? acc.posinf : acc.neginf) += 1;
    }
  }
  acc.kmin = lo;
  acc.kmax = hi;
}

// ---- counting against thresholds ----------------------------------------------------------

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

// Counts each value in bucket g[i], after moving the guesses flagged in check[i] to the bucket
// with T[g] <= x < T[g+1].
template <class K, bool kSkipNonfinite>
void fix_and_count(const K* x, std::size_t n, std::int32_t* g, const std::uint8_t* check,
                   const CountArgs<K>& a, std::uint64_t* hist) {
  const K* t = a.thresholds;
  const std::int32_t nb = a.nb;
  const std::size_t lane_mask = static_cast<std::size_t>(a.lanes - 1);
  for (std::size_t i = 0; i < n; ++i) {
    const K xi = x[i];
    if (kSkipNonfinite && !(std::fabs(xi) <= std::numeric_limits<K>::max())) continue;
    std::int32_t gi = g[i];
    if (check[i]) {
      if (xi >= t[gi + 1]) {
        ++gi;
        if (xi >= t[gi + 1]) gi = search_bucket(xi, t, nb);
      } else if (xi < t[gi]) {
        --gi;
        if (xi < t[gi]) gi = search_bucket(xi, t, nb);
      }
    }
    hist[(i & lane_mask) * nb + gi] += 1;
  }
}

template <class K> void count_v2_generic(const K* x, std::size_t n, const CountArgs<K>& a,
                                         std::uint64_t* hist) {
  std::int32_t g[kBlock];
  std::uint8_t check[kBlock];
  const std::int32_t last = a.nb - 1;
  const K gmax = static_cast<K>(last), tol = a.tolerance;
  // First guess, vectorised: (x - lo) * scale, clamped (NaN lands on 0 and is skipped later),
  // and whether it is certain: far enough inside its bucket (V2Plan::guess_tolerance).
  for (std::size_t i = 0; i < n; ++i) {
    K q = (x[i] - a.lo) * a.scale;
    q = q > K(0) ? q : K(0);
    const std::int32_t gi = static_cast<std::int32_t>(q < gmax ? q : gmax);
    const K gf = static_cast<K>(gi);
    // Bitwise, not short-circuit: no branches, so the loop vectorises.
    const int sure = ((gi == 0) | (q - gf >= tol)) & ((gi == last) | (gf + K(1) - q >= tol));
    g[i] = gi;
    check[i] = static_cast<std::uint8_t>(sure ^ 1);
  }
  if (a.skip_nonfinite) fix_and_count<K, true>(x, n, g, check, a, hist);
  else fix_and_count<K, false>(x, n, g, check, a, hist);
}

// Lanes (bits of `lanes`) whose guess gb[l] may be off: keep it where T[g] <= x < T[g+1], else
// search the whole table.
template <class K>
inline void refile_lanes(std::int32_t* gb, unsigned lanes, const K* x, const K* t, std::int32_t nb) {
  for (unsigned m = lanes; m; m &= m - 1) {
    const int l = __builtin_ctz(m);
    if (!(t[gb[l]] <= x[l] && x[l] < t[gb[l] + 1])) gb[l] = search_bucket(x[l], t, nb);
  }
}

#if HISTGPU_HAVE_AVX512 || HISTGPU_HAVE_AVX2
// Counts one-hot bucket bits with a Harley-Seal carry-save adder tree: 16 vectors of one-hot
// bits are summed into bit-sliced counters (ones, twos, fours, eights) and only the carry out
// of every 16th vector (sixteens) is turned into integer counts. `Simd` supplies the vector
// type and kLanes, one_hot(x), csa(high, low, a, b, c) and add_bit_counts(v, weight, nb, hist).
template <class Simd, class K>
void count_one_hot_csa(const K* x, std::size_t n, const CountArgs<K>& a, std::uint64_t* hist) {
  using V = typename Simd::Vec;
  constexpr std::size_t L = Simd::kLanes;
  const Simd simd(a);
  const std::int32_t nb = a.nb;
  V ones = Simd::zero(), twos = ones, fours = ones, eights = ones;
  std::size_t i = 0;
  for (; i + 16 * L <= n; i += 16 * L) {
    V twos_a, twos_b, fours_a, fours_b, eights_a, eights_b, sixteens;
    const K* p = x + i;
    Simd::csa(twos_a, ones, ones, simd.one_hot(p), simd.one_hot(p + L));
    Simd::csa(twos_b, ones, ones, simd.one_hot(p + 2 * L), simd.one_hot(p + 3 * L));
    Simd::csa(fours_a, twos, twos, twos_a, twos_b);
    Simd::csa(twos_a, ones, ones, simd.one_hot(p + 4 * L), simd.one_hot(p + 5 * L));
    Simd::csa(twos_b, ones, ones, simd.one_hot(p + 6 * L), simd.one_hot(p + 7 * L));
    Simd::csa(fours_b, twos, twos, twos_a, twos_b);
    Simd::csa(eights_a, fours, fours, fours_a, fours_b);
    Simd::csa(twos_a, ones, ones, simd.one_hot(p + 8 * L), simd.one_hot(p + 9 * L));
    Simd::csa(twos_b, ones, ones, simd.one_hot(p + 10 * L), simd.one_hot(p + 11 * L));
    Simd::csa(fours_a, twos, twos, twos_a, twos_b);
    Simd::csa(twos_a, ones, ones, simd.one_hot(p + 12 * L), simd.one_hot(p + 13 * L));
    Simd::csa(twos_b, ones, ones, simd.one_hot(p + 14 * L), simd.one_hot(p + 15 * L));
    Simd::csa(fours_b, twos, twos, twos_a, twos_b);
    Simd::csa(eights_b, fours, fours, fours_a, fours_b);
    Simd::csa(sixteens, eights, eights, eights_a, eights_b);
    Simd::add_bit_counts(sixteens, 16, nb, hist);
  }
  for (; i + L <= n; i += L) Simd::add_bit_counts(simd.one_hot(x + i), 1, nb, hist);
  Simd::add_bit_counts(ones, 1, nb, hist);
  Simd::add_bit_counts(twos, 2, nb, hist);
  Simd::add_bit_counts(fours, 4, nb, hist);
  Simd::add_bit_counts(eights, 8, nb, hist);
  if (i < n) count_v2_generic<K>(x + i, n - i, a, hist);
}
#endif

#if HISTGPU_HAVE_AVX512
// float32 with at most 32 buckets, no per-element memory writes:
//  1. bucket: guess (x - lo) * scale, then fix it against both neighbouring thresholds, which
//     two-register permutes fetch from the 32-entry tables;
//  2. count: each lane's bucket becomes a one-hot bit (1 << g), and a Harley-Seal carry-save
//     adder tree sums 16 such vectors into bit-sliced counters; only every 16th vector's carry
//     is turned into integer counts (one mask test + popcount per bucket).
// Scalar increments would cost about a cycle per element on their own; this costs a fraction.
struct BucketsF32x16 {
  using Vec = __m512i;
  static constexpr std::size_t kLanes = 16;
  __m512 low0, low1, high0, high1, lo, scale, gmax;
  const float* t;
  std::int32_t nb;
  bool skip_nonfinite;

  explicit BucketsF32x16(const CountArgs<float>& a) : t(a.thresholds), nb(a.nb), skip_nonfinite(a.skip_nonfinite) {
    alignas(64) float low[32], high[32];
    for (int g = 0; g < 32; ++g) {
      low[g] = g < nb ? t[g] : -std::numeric_limits<float>::infinity();
      high[g] = g < nb ? t[g + 1] : std::numeric_limits<float>::infinity();
    }
    low0 = _mm512_load_ps(low);
    low1 = _mm512_load_ps(low + 16);
    high0 = _mm512_load_ps(high);
    high1 = _mm512_load_ps(high + 16);
    lo = _mm512_set1_ps(a.lo);
    scale = _mm512_set1_ps(a.scale);
    gmax = _mm512_set1_ps(static_cast<float>(nb - 1));
  }

  // One-hot bucket bits of 16 values (0 for values left out).
  inline __m512i one_hot(const float* x) const {
    const __m512 xv = _mm512_loadu_ps(x);
    __m512 q = _mm512_mul_ps(_mm512_sub_ps(xv, lo), scale);
    q = _mm512_min_ps(_mm512_max_ps(q, _mm512_setzero_ps()), gmax);  // max(NaN, 0) gives 0
    __m512i g = _mm512_cvttps_epi32(q);
    const __m512 tl = _mm512_permutex2var_ps(low0, g, low1);
    const __m512 th = _mm512_permutex2var_ps(high0, g, high1);
    const __mmask16 up = _mm512_cmp_ps_mask(xv, th, _CMP_GE_OQ);
    const __mmask16 down = _mm512_cmp_ps_mask(xv, tl, _CMP_LT_OQ);
    const __m512i one = _mm512_set1_epi32(1);
    g = _mm512_mask_add_epi32(g, up, g, one);
    g = _mm512_mask_sub_epi32(g, down, g, one);
    const __mmask16 finite =
        skip_nonfinite ? _mm512_cmp_ps_mask(_mm512_abs_ps(xv), _mm512_set1_ps(FLT_MAX), _CMP_LE_OQ)
                       : __mmask16(0xffff);
    // Lanes that moved may need more than one step (only for huge bucket counts or ranges).
    if (const unsigned moved = (up | down) & finite) {
      alignas(64) std::int32_t gb[16];
      _mm512_store_si512(gb, g);
      refile_lanes(gb, moved, x, t, nb);
      g = _mm512_load_si512(gb);
    }
    return _mm512_maskz_sllv_epi32(finite, one, g);
  }

  static inline __m512i zero() { return _mm512_setzero_si512(); }

  // Carry-save adder: (high, low) = a + b + c, bitwise.
  static inline void csa(__m512i& high, __m512i& low, __m512i a, __m512i b, __m512i c) {
    low = _mm512_ternarylogic_epi32(a, b, c, 0x96);   // a ^ b ^ c
    high = _mm512_ternarylogic_epi32(a, b, c, 0xe8);  // majority(a, b, c)
  }

  // Adds weight * (number of lanes with bit p set) to hist[p] for every bucket p.
  static inline void add_bit_counts(__m512i v, std::uint64_t weight, std::int32_t nb, std::uint64_t* hist) {
    for (std::int32_t p = 0; p < nb; ++p) {
      const __mmask16 m = _mm512_test_epi32_mask(v, _mm512_set1_epi32(1 << p));
      hist[p] += static_cast<std::uint64_t>(__builtin_popcount(m)) * weight;
    }
  }
};

void count_v2_f32_avx512(const float* x, std::size_t n, const CountArgs<float>& a,
                         std::uint64_t* hist) {
  count_one_hot_csa<BucketsF32x16>(x, n, a, hist);
}
// float64 with at most 32 buckets: the arithmetic guess in float64, trusted where it is far
// enough inside its bucket (V2Plan::guess_tolerance, about k * 2^-49: nearly always), the rest
// checked against the thresholds one by one; 16 values (two vectors of 8) per one-hot vector.
struct BucketsF64x16 {
  using Vec = __m512i;
  static constexpr std::size_t kLanes = 16;
  __m512d lo, scale, gmax, tol, vmax;
  __m256i last;
  const double* t;
  std::int32_t nb;
  bool skip_nonfinite;

  explicit BucketsF64x16(const CountArgs<double>& a)
      : lo(_mm512_set1_pd(a.lo)), scale(_mm512_set1_pd(a.scale)),
        gmax(_mm512_set1_pd(static_cast<double>(a.nb - 1))), tol(_mm512_set1_pd(a.tolerance)),
        vmax(_mm512_set1_pd(DBL_MAX)), last(_mm256_set1_epi32(a.nb - 1)), t(a.thresholds), nb(a.nb),
        skip_nonfinite(a.skip_nonfinite) {}

  // Guesses of 8 values; `sure` and `finite` masks of them.
  inline __m256i guess8(const double* x, __mmask8& sure, __mmask8& finite) const {
    const __m512d xv = _mm512_loadu_pd(x);
    __m512d q = _mm512_mul_pd(_mm512_sub_pd(xv, lo), scale);
    q = _mm512_max_pd(q, _mm512_setzero_pd());  // max(NaN, 0) gives 0
    const __m256i g = _mm512_cvttpd_epi32(_mm512_min_pd(q, gmax));
    const __m512d gf = _mm512_cvtepi32_pd(g);
    const __mmask8 low_ok = _mm256_cmpeq_epi32_mask(g, _mm256_setzero_si256()) |
                            _mm512_cmp_pd_mask(_mm512_sub_pd(q, gf), tol, _CMP_GE_OQ);
    const __mmask8 high_ok = _mm256_cmpeq_epi32_mask(g, last) |
                             _mm512_cmp_pd_mask(_mm512_sub_pd(_mm512_add_pd(gf, _mm512_set1_pd(1.0)), q), tol, _CMP_GE_OQ);
    sure = low_ok & high_ok;
    finite = skip_nonfinite ? _mm512_cmp_pd_mask(_mm512_abs_pd(xv), vmax, _CMP_LE_OQ) : __mmask8(0xff);
    return g;
  }

  inline __m512i one_hot(const double* x) const {
    __mmask8 sure0, sure1, fin0, fin1;
    const __m256i g0 = guess8(x, sure0, fin0), g1 = guess8(x + 8, sure1, fin1);
    __m512i g = _mm512_inserti64x4(_mm512_castsi256_si512(g0), g1, 1);
    const __mmask16 finite = static_cast<__mmask16>(fin0 | (fin1 << 8));
    if (const unsigned unsure = ~unsigned(sure0 | (sure1 << 8)) & finite & 0xffffu) {
      alignas(64) std::int32_t gb[16];
      _mm512_store_si512(gb, g);
      refile_lanes(gb, unsure, x, t, nb);
      g = _mm512_load_si512(gb);
    }
    return _mm512_maskz_sllv_epi32(finite, _mm512_set1_epi32(1), g);
  }

  static inline __m512i zero() { return BucketsF32x16::zero(); }
  static inline void csa(__m512i& high, __m512i& low, __m512i a, __m512i b, __m512i c) {
    BucketsF32x16::csa(high, low, a, b, c);
  }
  static inline void add_bit_counts(__m512i v, std::uint64_t weight, std::int32_t nb, std::uint64_t* hist) {
    BucketsF32x16::add_bit_counts(v, weight, nb, hist);
  }
};

#endif

#if HISTGPU_HAVE_AVX2
// The AVX2 form of BucketsF32x16 (see there): 8 lanes, 32-entry threshold tables read with
// four 8-entry permutes and two levels of blends, carry-save adders built from and/or/xor.
struct BucketsF32x8 {
  using Vec = __m256i;
  static constexpr std::size_t kLanes = 8;
  __m256 low[4], high[4], lo, scale, gmax;
  const float* t;
  std::int32_t nb;
  bool skip_nonfinite;

  explicit BucketsF32x8(const CountArgs<float>& a) : t(a.thresholds), nb(a.nb), skip_nonfinite(a.skip_nonfinite) {
    alignas(32) float lowt[32], hight[32];
    for (int g = 0; g < 32; ++g) {
      lowt[g] = g < nb ? t[g] : -std::numeric_limits<float>::infinity();
      hight[g] = g < nb ? t[g + 1] : std::numeric_limits<float>::infinity();
    }
    for (int r = 0; r < 4; ++r) {
      low[r] = _mm256_load_ps(lowt + 8 * r);
      high[r] = _mm256_load_ps(hight + 8 * r);
    }
    lo = _mm256_set1_ps(a.lo);
    scale = _mm256_set1_ps(a.scale);
    gmax = _mm256_set1_ps(static_cast<float>(nb - 1));
  }

  static inline __m256 lookup(const __m256 tab[4], __m256i g) {
    const __m256 bit3 = _mm256_castsi256_ps(_mm256_slli_epi32(g, 28));  // bit 3 into the sign
    const __m256 bit4 = _mm256_castsi256_ps(_mm256_slli_epi32(g, 27));  // bit 4 into the sign
    const __m256 ab = _mm256_blendv_ps(_mm256_permutevar8x32_ps(tab[0], g),
                                       _mm256_permutevar8x32_ps(tab[1], g), bit3);
    const __m256 cd = _mm256_blendv_ps(_mm256_permutevar8x32_ps(tab[2], g),
                                       _mm256_permutevar8x32_ps(tab[3], g), bit3);
    return _mm256_blendv_ps(ab, cd, bit4);
  }

  inline __m256i one_hot(const float* x) const {
    const __m256 xv = _mm256_loadu_ps(x);
    __m256 q = _mm256_mul_ps(_mm256_sub_ps(xv, lo), scale);
    q = _mm256_min_ps(_mm256_max_ps(q, _mm256_setzero_ps()), gmax);  // max(NaN, 0) gives 0
    __m256i g = _mm256_cvttps_epi32(q);
    const __m256i up = _mm256_castps_si256(_mm256_cmp_ps(xv, lookup(high, g), _CMP_GE_OQ));
    const __m256i down = _mm256_castps_si256(_mm256_cmp_ps(xv, lookup(low, g), _CMP_LT_OQ));
    g = _mm256_add_epi32(_mm256_sub_epi32(g, up), down);  // up/down lanes are -1
    const __m256i finite =
        skip_nonfinite
            ? _mm256_castps_si256(_mm256_cmp_ps(
                  _mm256_and_ps(xv, _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff))),
                  _mm256_set1_ps(FLT_MAX), _CMP_LE_OQ))
            : _mm256_set1_epi32(-1);
    const int moved = _mm256_movemask_ps(_mm256_castsi256_ps(
        _mm256_and_si256(_mm256_or_si256(up, down), finite)));
    if (moved) {  // lanes that may need more than one step
      alignas(32) std::int32_t gb[8];
      _mm256_store_si256(reinterpret_cast<__m256i*>(gb), g);
      refile_lanes(gb, static_cast<unsigned>(moved), x, t, nb);
      g = _mm256_load_si256(reinterpret_cast<const __m256i*>(gb));
    }
    return _mm256_and_si256(_mm256_sllv_epi32(_mm256_set1_epi32(1), g), finite);
  }

  static inline __m256i zero() { return _mm256_setzero_si256(); }

  static inline void csa(__m256i& high, __m256i& low, __m256i a, __m256i b, __m256i c) {
    const __m256i u = _mm256_xor_si256(a, b);
    low = _mm256_xor_si256(u, c);
    high = _mm256_or_si256(_mm256_and_si256(a, b), _mm256_and_si256(u, c));
  }

  static inline void add_bit_counts(__m256i v, std::uint64_t weight, std::int32_t nb, std::uint64_t* hist) {
    for (std::int32_t p = 0; p < nb; ++p) {
      const __m256i at_sign = _mm256_sll_epi32(v, _mm_cvtsi32_si128(31 - p));
      hist[p] += static_cast<std::uint64_t>(
                     __builtin_popcount(_mm256_movemask_ps(_mm256_castsi256_ps(at_sign)))) * weight;
    }
  }
};

void count_v2_f32_avx2(const float* x, std::size_t n, const CountArgs<float>& a, std::uint64_t* hist) {
  count_one_hot_csa<BucketsF32x8>(x, n, a, hist);
}
#endif

void count_v2_f32(const float* x, std::size_t n, const CountArgs<float>& a, std::uint64_t* hist) {
#if HISTGPU_HAVE_AVX512
  if (a.nb <= 32) return count_v2_f32_avx512(x, n, a, hist);
#elif HISTGPU_HAVE_AVX2
  if (a.nb <= 32) return count_v2_f32_avx2(x, n, a, hist);
#endif
  count_v2_generic<float>(x, n, a, hist);
}

void count_v2_f64(const double* x, std::size_t n, const CountArgs<double>& a, std::uint64_t* hist) {
#if HISTGPU_HAVE_AVX512
  if (a.nb <= 32) return count_one_hot_csa<BucketsF64x16>(x, n, a, hist);
#endif
  count_v2_generic<double>(x, n, a, hist);
}

// ---- v1: fixed TensorFlow limits, range, non-finite counts and exact sums in one read -------

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

void v1_f32(const float* x, std::size_t n, const CountArgs<float>& a, std::uint64_t* h, V1Acc<float>& acc) {
#if HISTGPU_HAVE_AVX512
  return v1_f32_avx512(x, n, a, h, acc);
#endif
  v1_block<float>(x, n, a, h, acc);
}
void v1_f64(const double* x, std::size_t n, const CountArgs<double>& a, std::uint64_t* h, V1Acc<double>& acc) {
  v1_block<double>(x, n, a, h, acc);
}

// ---- exact conversion of every accepted dtype ---------------------------------------------

float decode_small_float(unsigned b, int exp_bits, int mant_bits, bool has_inf) {
  const int bias = (1 << (exp_bits - 1)) - 1;
  const unsigned e = (b >> mant_bits) & ((1u << exp_bits) - 1);
  const unsigned m = b & ((1u << mant_bits) - 1);
  const bool neg = (b >> (exp_bits + mant_bits)) & 1;
  float v;
  const unsigned emax = (1u << exp_bits) - 1;
  if (has_inf && e == emax) v = m ? std::numeric_limits<float>::quiet_NaN() : std::numeric_limits<float>::infinity();
  else if (!has_inf && e == emax && m == (1u << mant_bits) - 1) v = std::numeric_limits<float>::quiet_NaN();
  else if (e == 0) v = std::ldexp(static_cast<float>(m), 1 - bias - mant_bits);
  else v = std::ldexp(static_cast<float>(m | (1u << mant_bits)), static_cast<int>(e) - bias - mant_bits);
  return neg ? -v : v;
}

struct ByteTables {
  float boolean[256], int8[256], uint8[256], e4m3fn[256], e5m2[256];
  ByteTables() {
    for (unsigned b = 0; b < 256; ++b) {
      boolean[b] = b ? 1.0f : 0.0f;
      int8[b] = static_cast<float>(static_cast<std::int8_t>(b));
      uint8[b] = static_cast<float>(b);
      e4m3fn[b] = decode_small_float(b, 4, 3, false);
      e5m2[b] = decode_small_float(b, 5, 2, true);
    }
  }
};
const ByteTables& byte_tables() {
  static const ByteTables t;
  return t;
}

template <class S, class K> void cast_strided(const char* p, std::int64_t stride, std::size_t n, K* out) {
  if (stride == static_cast<std::int64_t>(sizeof(S))) {
    S tmp[kBlock];
    std::memcpy(tmp, p, n * sizeof(S));
    for (std::size_t i = 0; i < n; ++i) out[i] = static_cast<K>(tmp[i]);
  } else {
    for (std::size_t i = 0; i < n; ++i) {
      S v;
      std::memcpy(&v, p + static_cast<std::int64_t>(i) * stride, sizeof v);
      out[i] = static_cast<K>(v);
    }
  }
}

void lookup_bytes(const float* table, const char* p, std::int64_t stride, std::size_t n, float* out) {
  for (std::size_t i = 0; i < n; ++i)
    out[i] = table[static_cast<unsigned char>(p[static_cast<std::int64_t>(i) * stride])];
}

void bf16_to_f32(const char* p, std::int64_t stride, std::size_t n, float* out) {
  for (std::size_t i = 0; i < n; ++i) {
    std::uint16_t h;
    std::memcpy(&h, p + static_cast<std::int64_t>(i) * stride, 2);
    const std::uint32_t u = static_cast<std::uint32_t>(h) << 16;
    std::memcpy(out + i, &u, 4);
  }
}

void to_f32(DType t, const char* p, std::int64_t stride, std::size_t n, float* out) {
  const ByteTables& bt = byte_tables();
  switch (t) {
    case DType::Bool: return lookup_bytes(bt.boolean, p, stride, n, out);
    case DType::Int8: return lookup_bytes(bt.int8, p, stride, n, out);
    case DType::UInt8: return lookup_bytes(bt.uint8, p, stride, n, out);
    case DType::Float8E4M3FN: return lookup_bytes(bt.e4m3fn, p, stride, n, out);
    case DType::Float8E5M2: return lookup_bytes(bt.e5m2, p, stride, n, out);
    case DType::Int16: return cast_strided<std::int16_t>(p, stride, n, out);
    case DType::UInt16: return cast_strided<std::uint16_t>(p, stride, n, out);
    case DType::Float16: return cast_strided<_Float16>(p, stride, n, out);
    case DType::BFloat16: return bf16_to_f32(p, stride, n, out);
    case DType::Float32: return cast_strided<float>(p, stride, n, out);
    default: throw std::logic_error("histgpu: dtype is not counted in float32");
  }
}

void to_f64(DType t, const char* p, std::int64_t stride, std::size_t n, double* out) {
  switch (t) {
    case DType::Int32: return cast_strided<std::int32_t>(p, stride, n, out);
    case DType::UInt32: return cast_strided<std::uint32_t>(p, stride, n, out);
    case DType::Int64: return cast_strided<std::int64_t>(p, stride, n, out);
    case DType::UInt64: return cast_strided<std::uint64_t>(p, stride, n, out);
    case DType::Float64: return cast_strided<double>(p, stride, n, out);
    default: throw std::logic_error("histgpu: dtype is not counted in float64");
  }
}

#define HISTGPU_STR2(x) #x
#define HISTGPU_STR(x) HISTGPU_STR2(x)

}  // namespace

const KernelTable& kernels() {
  static const KernelTable table{
      HISTGPU_STR(HISTGPU_ISA),
      range_block<float>, range_block<double>,
      count_v2_f32, count_v2_f64,
      v1_f32, v1_f64,
      to_f32, to_f64,
  };
  return table;
}

}  // namespace histgpu::cpu::HISTGPU_ISA
