// v2 counting against threshold tables (core/thresholds.hpp), compiled per instruction set
// (see isa.hpp): a generic path for any bucket count, and for at most 32 buckets one-hot bits
// summed by carry-save adders (AVX-512 and AVX2).
#include <cfloat>
#include <cmath>
#include <cstring>
#include <limits>

#include "core/bucket_search.hpp"
#include "cpu/kernels/isa.hpp"

namespace histgpu::cpu::HISTGPU_ISA {
namespace {

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

}  // namespace

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
}  // namespace histgpu::cpu::HISTGPU_ISA
