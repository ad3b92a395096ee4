// v2 counting against threshold tables (core/thresholds.hpp), compiled per instruction set
// (see isa.hpp): for any bucket count, per-element counter indices computed in vector registers
// and scalar increments; for at most 32 buckets, one-hot bits summed by carry-save adders
// (AVX-512 and AVX2), with no per-element memory writes at all.
//
// Both start from the arithmetic guess g = trunc((x - lo) * scale) of V2Plan and trust it where
// it is far enough inside its bucket (V2Plan::guess_tolerance); the few other values are placed
// by the thresholds themselves, so the counts are the float64 formula's, bit for bit.
#include <cfloat>
#include <cmath>
#include <cstring>
#include <limits>

#include "core/bucket_search.hpp"
#include "cpu/kernels/isa.hpp"

namespace histgpu::cpu::HISTGPU_ISA {
namespace {

// The bucket of finite x by the thresholds, starting from a guess g that is usually right or
// one off (T[g] <= x < T[g+1] decides).
template <class K> inline std::int32_t refile(K x, std::int32_t g, const K* t, std::int32_t nb) {
  if (x >= t[g + 1]) {
    ++g;
    if (x >= t[g + 1]) g = search_bucket(x, t, nb);
  } else if (x < t[g]) {
    --g;
    if (x < t[g]) g = search_bucket(x, t, nb);
  }
  return g;
}

// ---- any bucket count: counter indices, then increments -------------------------------------

// The guesses of V2Plan, tested cheaply: with q = (x - lo) * scale clamped to [0.5, nb - 0.5]
// (NaN to 0.5), the guess trunc(q) is certain when q's fraction is at least `tolerance` from
// both ends, |frac - 0.5| <= 0.5 - tolerance. The clamped ends always pass, and may: below 0.5
// is bucket 0, at or above nb - 0.5 the last bucket. A NaN tolerance fails every test.
template <class K> struct GuessArgs {
  K lo, scale, half = K(0.5), top, limit;
  explicit GuessArgs(const CountArgs<K>& a)
      : lo(a.lo), scale(a.scale), top(static_cast<K>(a.nb) - K(0.5)), limit(K(0.5) - a.tolerance) {}
};

// Counter indices of n <= kBlock values (the guessed bucket in the private copy of each
// position, the spare counter for values left out) and whether any guess is uncertain (bit i of
// `unsure`, kBlock / 64 words that the caller zeroed). Scalar form: the per-ISA forms below do
// the same 16 or 8 values at a time.
template <class K>
bool guess_indices_scalar(const K* x, std::size_t n, const CountArgs<K>& a, std::uint32_t* idx, std::uint64_t* unsure,
                          std::size_t first = 0) {
  const GuessArgs<K> c(a);
  const std::uint32_t nb = static_cast<std::uint32_t>(a.nb), spare = static_cast<std::uint32_t>(a.lanes) * nb;
  const std::uint32_t lane_mask = static_cast<std::uint32_t>(a.lanes - 1);
  bool any = false;
  for (std::size_t i = first; i < n; ++i) {
    const K xi = x[i];
    K q = (xi - c.lo) * c.scale;
    q = q > c.half ? q : c.half;
    q = q < c.top ? q : c.top;
    const auto g = static_cast<std::uint32_t>(q);
    const bool sure = std::fabs(q - static_cast<K>(g) - c.half) <= c.limit;
    const bool finite = !a.skip_nonfinite || std::fabs(xi) <= std::numeric_limits<K>::max();
    idx[i] = finite ? (static_cast<std::uint32_t>(i) & lane_mask) * nb + g : spare;
    if (finite && !sure) {
      unsure[i >> 6] |= std::uint64_t(1) << (i & 63);
      any = true;
    }
  }
  return any;
}

template <class K>
bool guess_indices(const K* x, std::size_t n, const CountArgs<K>& a, std::uint32_t* idx, std::uint64_t* unsure) {
  return guess_indices_scalar<K>(x, n, a, idx, unsure);
}

#if HISTGPU_HAVE_AVX512
template <>
bool guess_indices<float>(const float* x, std::size_t n, const CountArgs<float>& a, std::uint32_t* idx,
                          std::uint64_t* unsure) {
  const GuessArgs<float> c(a);
  const __m512 lo = _mm512_set1_ps(c.lo), scale = _mm512_set1_ps(c.scale), half = _mm512_set1_ps(0.5f),
               top = _mm512_set1_ps(c.top), limit = _mm512_set1_ps(c.limit), vmax = _mm512_set1_ps(FLT_MAX);
  const std::uint32_t nb = static_cast<std::uint32_t>(a.nb);
  alignas(64) std::uint32_t lane[16];
  for (std::uint32_t l = 0; l < 16; ++l) lane[l] = (l & static_cast<std::uint32_t>(a.lanes - 1)) * nb;
  const __m512i lanes = _mm512_load_si512(lane), spare = _mm512_set1_epi32(static_cast<int>(a.lanes * nb));
  std::uint32_t any = 0;
  std::size_t i = 0;
  for (; i + 16 <= n; i += 16) {
    prefetch_ahead(x + i, 64);
    const __m512 xv = _mm512_loadu_ps(x + i);
    __m512 q = _mm512_mul_ps(_mm512_sub_ps(xv, lo), scale);
    q = _mm512_min_ps(_mm512_max_ps(q, half), top);  // max(NaN, 0.5) gives 0.5
    const __m512i g = _mm512_cvttps_epi32(q);
    const __m512 off = _mm512_abs_ps(_mm512_sub_ps(_mm512_sub_ps(q, _mm512_cvtepi32_ps(g)), half));
    const __mmask16 sure = _mm512_cmp_ps_mask(off, limit, _CMP_LE_OQ);
    const __mmask16 finite =
        a.skip_nonfinite ? _mm512_cmp_ps_mask(_mm512_abs_ps(xv), vmax, _CMP_LE_OQ) : __mmask16(0xffff);
    _mm512_storeu_si512(idx + i, _mm512_mask_add_epi32(spare, finite, lanes, g));
    const std::uint64_t u = finite & ~sure & 0xffffu;
    unsure[i >> 6] |= u << (i & 63);
    any |= static_cast<std::uint32_t>(u);
  }
  // The last few values in scalar form.
  if (i < n && guess_indices_scalar<float>(x, n, a, idx, unsure, i)) any = 1;
  return any;
}
#elif HISTGPU_HAVE_AVX2
template <>
bool guess_indices<float>(const float* x, std::size_t n, const CountArgs<float>& a, std::uint32_t* idx,
                          std::uint64_t* unsure) {
  const GuessArgs<float> c(a);
  const __m256 lo = _mm256_set1_ps(c.lo), scale = _mm256_set1_ps(c.scale), half = _mm256_set1_ps(0.5f),
               top = _mm256_set1_ps(c.top), limit = _mm256_set1_ps(c.limit), vmax = _mm256_set1_ps(FLT_MAX);
  const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
  const std::uint32_t nb = static_cast<std::uint32_t>(a.nb);
  alignas(32) std::uint32_t lane[8];
  for (std::uint32_t l = 0; l < 8; ++l) lane[l] = (l & static_cast<std::uint32_t>(a.lanes - 1)) * nb;
  const __m256i lanes = _mm256_load_si256(reinterpret_cast<const __m256i*>(lane));
  const __m256i spare = _mm256_set1_epi32(static_cast<int>(a.lanes * nb));
  std::uint32_t any = 0;
  std::size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    prefetch_ahead(x + i, 32);
    const __m256 xv = _mm256_loadu_ps(x + i);
    __m256 q = _mm256_mul_ps(_mm256_sub_ps(xv, lo), scale);
    q = _mm256_min_ps(_mm256_max_ps(q, half), top);  // max(NaN, 0.5) gives 0.5
    const __m256i g = _mm256_cvttps_epi32(q);
    const __m256 off = _mm256_and_ps(_mm256_sub_ps(_mm256_sub_ps(q, _mm256_cvtepi32_ps(g)), half), abs_mask);
    const __m256 sure = _mm256_cmp_ps(off, limit, _CMP_LE_OQ);
    const __m256 finite = a.skip_nonfinite ? _mm256_cmp_ps(_mm256_and_ps(xv, abs_mask), vmax, _CMP_LE_OQ)
                                           : _mm256_castsi256_ps(_mm256_set1_epi32(-1));
    const __m256i at = _mm256_blendv_epi8(spare, _mm256_add_epi32(lanes, g), _mm256_castps_si256(finite));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(idx + i), at);
    const auto u = static_cast<std::uint64_t>(_mm256_movemask_ps(_mm256_andnot_ps(sure, finite)));
    unsure[i >> 6] |= u << (i & 63);
    any |= static_cast<std::uint32_t>(u);
  }
  // The last few values in scalar form.
  if (i < n && guess_indices_scalar<float>(x, n, a, idx, unsure, i)) any = 1;
  return any;
}
#endif

// Counts x[0..n) (n <= kBlock): counter indices in vector registers, the uncertain guesses
// (one value in hundreds or fewer) placed by the thresholds, then one increment per value.
template <class K>
void count_block_indexed(const K* x, std::size_t n, const CountArgs<K>& a, std::uint64_t* hist) {
  alignas(64) std::uint32_t idx[kBlock];
  std::uint64_t unsure[kBlock / 64] = {};
  if (guess_indices<K>(x, n, a, idx, unsure)) {
    const std::uint32_t nb = static_cast<std::uint32_t>(a.nb), lane_mask = static_cast<std::uint32_t>(a.lanes - 1);
    for (std::size_t w = 0; w < kBlock / 64; ++w) {
      for (std::uint64_t m = unsure[w]; m; m &= m - 1) {
        const std::size_t i = w * 64 + static_cast<std::size_t>(__builtin_ctzll(m));
        const std::uint32_t lane = (static_cast<std::uint32_t>(i) & lane_mask) * nb;
        idx[i] = lane + static_cast<std::uint32_t>(refile(x[i], static_cast<std::int32_t>(idx[i] - lane), a.thresholds, a.nb));
      }
    }
  }
  std::uint64_t* __restrict h = hist;
  for (std::size_t i = 0; i < n; ++i) ++h[idx[i]];
}

template <class K> void count_v2_indexed(const K* x, std::size_t n, const CountArgs<K>& a, std::uint64_t* hist) {
  for (std::size_t i = 0; i < n; i += kBlock) count_block_indexed<K>(x + i, std::min(kBlock, n - i), a, hist);
}

// ---- at most 32 buckets: one-hot bits and carry-save adders ---------------------------------

#if HISTGPU_HAVE_AVX512 || HISTGPU_HAVE_AVX2
// Bit-sliced counters: level[i] holds, per bit position (bucket) and lane, bit i of how many
// one-hot vectors set that bit. A carry-save adder tree (Harley-Seal) adds 2^kLevels vectors
// with about one adder each; only the carry out of the tree becomes integer counts, so the
// per-bucket popcounts are paid once per 2^kLevels vectors, not per vector. `Simd` supplies
// the vector type Vec, kLanes, one_hot(x), csa(high, low, a, b, c) and
// add_bit_counts(v, weight, nb, hist).
template <class Simd, class K, int kLevels> class OneHotCounter {
 public:
  using V = typename Simd::Vec;
  static constexpr std::size_t kPerTree = Simd::kLanes << kLevels;

  explicit OneHotCounter(const CountArgs<K>& a) : simd_(a), nb_(a.nb) {
    for (auto& l : level_) l = Simd::zero();
  }

  // Adds kPerTree values from p.
  inline void add_tree(const K* p, std::uint64_t* hist) {
    const V carry = tree<kLevels>(p);
    Simd::add_bit_counts(carry, std::uint64_t(1) << kLevels, nb_, hist);
  }
  // Adds one vector of values (for the few left after the trees): a ripple of half adders.
  inline void add_one(const K* p, std::uint64_t* hist) {
    V carry = simd_.one_hot(p);
    for (int i = 0; i < kLevels; ++i) {
      const V sum = Simd::xor_(level_[i], carry);
      carry = Simd::and_(level_[i], carry);
      level_[i] = sum;
    }
    if (!Simd::is_zero(carry)) Simd::add_bit_counts(carry, std::uint64_t(1) << kLevels, nb_, hist);
  }
  // Turns what the levels hold into integer counts.
  void finish(std::uint64_t* hist) {
    for (int i = 0; i < kLevels; ++i) Simd::add_bit_counts(level_[i], std::uint64_t(1) << i, nb_, hist);
  }

 private:
  // Adds 2^L one-hot vectors from p into levels 0..L-1; returns the carry (weight 2^L).
  template <int L> inline V tree(const K* p) {
    V high;
    if constexpr (L == 1) {
      prefetch_ahead(p, 2 * Simd::kLanes * sizeof(K));
      Simd::csa(high, level_[0], level_[0], simd_.one_hot(p), simd_.one_hot(p + Simd::kLanes));
    } else {
      const V a = tree<L - 1>(p);
      const V b = tree<L - 1>(p + (Simd::kLanes << (L - 1)));
      Simd::csa(high, level_[L - 1], level_[L - 1], a, b);
    }
    return high;
  }

  const Simd simd_;
  const std::int32_t nb_;
  V level_[kLevels];
};

template <class Simd, class K, int kLevels>
void count_one_hot(const K* x, std::size_t n, const CountArgs<K>& a, std::uint64_t* hist) {
  OneHotCounter<Simd, K, kLevels> counter(a);
  constexpr std::size_t L = Simd::kLanes, T = OneHotCounter<Simd, K, kLevels>::kPerTree;
  std::size_t i = 0;
  for (; i + T <= n; i += T) counter.add_tree(x + i, hist);
  for (; i + L <= n; i += L) counter.add_one(x + i, hist);
  counter.finish(hist);
  if (i < n) count_v2_indexed<K>(x + i, n - i, a, hist);
}

// Lanes (bits of `lanes`) whose guess gb[l] may be off: placed by the thresholds.
template <class K>
inline void refile_lanes(std::int32_t* gb, unsigned lanes, const K* x, const K* t, std::int32_t nb) {
  for (unsigned m = lanes; m; m &= m - 1) {
    const int l = __builtin_ctz(m);
    gb[l] = refile(x[l], gb[l], t, nb);
  }
}
#endif

#if HISTGPU_HAVE_AVX512
// float32, at most 32 buckets: the guess fixed against both neighbouring thresholds, which
// two-register permutes fetch from the 32-entry tables (cheaper here than any test of the guess).
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
      for (unsigned m = moved; m; m &= m - 1) {
        const int l = __builtin_ctz(m);
        if (!(t[gb[l]] <= x[l] && x[l] < t[gb[l] + 1])) gb[l] = search_bucket(x[l], t, nb);
      }
      g = _mm512_load_si512(gb);
    }
    return _mm512_maskz_sllv_epi32(finite, one, g);
  }

  static inline __m512i zero() { return _mm512_setzero_si512(); }
  static inline bool is_zero(__m512i v) { return _mm512_test_epi32_mask(v, v) == 0; }
  static inline __m512i xor_(__m512i a, __m512i b) { return _mm512_xor_si512(a, b); }
  static inline __m512i and_(__m512i a, __m512i b) { return _mm512_and_si512(a, b); }

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

// float64, at most 32 buckets: the arithmetic guess in float64, trusted where it is far enough
// inside its bucket (about k * 2^-49: nearly always), the rest placed by the thresholds; 16
// values (two vectors of 8) per one-hot vector.
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
  static inline bool is_zero(__m512i v) { return BucketsF32x16::is_zero(v); }
  static inline __m512i xor_(__m512i a, __m512i b) { return _mm512_xor_si512(a, b); }
  static inline __m512i and_(__m512i a, __m512i b) { return _mm512_and_si512(a, b); }
  static inline void csa(__m512i& high, __m512i& low, __m512i a, __m512i b, __m512i c) {
    BucketsF32x16::csa(high, low, a, b, c);
  }
  static inline void add_bit_counts(__m512i v, std::uint64_t weight, std::int32_t nb, std::uint64_t* hist) {
    BucketsF32x16::add_bit_counts(v, weight, nb, hist);
  }
};
#endif

#if HISTGPU_HAVE_AVX2
// float32, at most 32 buckets, 8 lanes: a threshold lookup costs four permutes and three blends
// here, so the guess is tested instead: with q clamped to [0.5, nb - 0.5] (NaN to 0.5), it is
// certain when q's fraction is at least `tolerance` from both ends (the clamped ends always
// are: below 0.5 is bucket 0, at or above nb - 0.5 the last). One vector in thousands has a
// lane that is not; its lanes are placed by the thresholds.
template <bool kSkipNonfinite> struct BucketsF32x8 {
  using Vec = __m256i;
  static constexpr std::size_t kLanes = 8;
  __m256 lo, scale, half, top, limit;
  const float* t;
  std::int32_t nb;

  explicit BucketsF32x8(const CountArgs<float>& a)
      : lo(_mm256_set1_ps(a.lo)), scale(_mm256_set1_ps(a.scale)), half(_mm256_set1_ps(0.5f)),
        top(_mm256_set1_ps(static_cast<float>(a.nb) - 0.5f)),
        limit(_mm256_set1_ps(0.5f - a.tolerance)),  // NaN tolerance: no guess is ever certain
        t(a.thresholds), nb(a.nb) {}

  inline __m256i one_hot(const float* x) const {
    const __m256 xv = _mm256_loadu_ps(x);
    __m256 q = _mm256_mul_ps(_mm256_sub_ps(xv, lo), scale);
    q = _mm256_min_ps(_mm256_max_ps(q, half), top);  // max(NaN, 0.5) gives 0.5
    __m256i g = _mm256_cvttps_epi32(q);
    const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
    const __m256 off = _mm256_and_ps(_mm256_sub_ps(_mm256_sub_ps(q, _mm256_cvtepi32_ps(g)), half), abs_mask);
    const __m256 sure = _mm256_cmp_ps(off, limit, _CMP_LE_OQ);
    __m256i finite = _mm256_set1_epi32(-1);
    if constexpr (kSkipNonfinite)
      finite = _mm256_castps_si256(_mm256_cmp_ps(_mm256_and_ps(xv, abs_mask), _mm256_set1_ps(FLT_MAX), _CMP_LE_OQ));
    const int unsure = _mm256_movemask_ps(_mm256_andnot_ps(sure, _mm256_castsi256_ps(finite)));
    if (unsure) {
      alignas(32) std::int32_t gb[8];
      _mm256_store_si256(reinterpret_cast<__m256i*>(gb), g);
      refile_lanes(gb, static_cast<unsigned>(unsure), x, t, nb);
      g = _mm256_load_si256(reinterpret_cast<const __m256i*>(gb));
    }
    const __m256i bit = _mm256_sllv_epi32(_mm256_set1_epi32(1), g);
    if constexpr (kSkipNonfinite) return _mm256_and_si256(bit, finite);
    return bit;
  }

  static inline __m256i zero() { return _mm256_setzero_si256(); }
  static inline bool is_zero(__m256i v) { return _mm256_testz_si256(v, v) != 0; }
  static inline __m256i xor_(__m256i a, __m256i b) { return _mm256_xor_si256(a, b); }
  static inline __m256i and_(__m256i a, __m256i b) { return _mm256_and_si256(a, b); }

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
#endif

}  // namespace

void count_v2_f32(const float* x, std::size_t n, const CountArgs<float>& a, std::uint64_t* hist) {
#if HISTGPU_HAVE_AVX512
  if (a.nb <= 32) return count_one_hot<BucketsF32x16, float, 6>(x, n, a, hist);
#elif HISTGPU_HAVE_AVX2
  if (a.nb <= 32) {
    if (a.skip_nonfinite) return count_one_hot<BucketsF32x8<true>, float, 5>(x, n, a, hist);
    return count_one_hot<BucketsF32x8<false>, float, 5>(x, n, a, hist);
  }
#endif
  count_v2_indexed<float>(x, n, a, hist);
}

void count_v2_f64(const double* x, std::size_t n, const CountArgs<double>& a, std::uint64_t* hist) {
#if HISTGPU_HAVE_AVX512
  if (a.nb <= 32) return count_one_hot<BucketsF64x16, double, 6>(x, n, a, hist);
#endif
  count_v2_indexed<double>(x, n, a, hist);
}

}  // namespace histgpu::cpu::HISTGPU_ISA
