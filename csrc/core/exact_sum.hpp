// Exact, order-free sums of floats and of their squares (docs/semantics.md §1.3, §2.2).
//
// A finite float is m * 2^e with an integer m. Adding the signed m (and m*m) into integer
// bins indexed by the exponent is exact and associative, so any thread count, sharding or
// device gives the same bins; folding the bins into one big fixed-point integer and rounding
// once gives the correctly rounded float64 of the mathematical sum.
#pragma once
#include <cstdint>
#include <vector>

#include "core/ordered.hpp"

namespace histgpu {

using int128 = __int128;
using uint128 = unsigned __int128;

// A signed fixed-point integer wide enough for every sum of squares of float64 values:
// bit 0 weighs 2^-kFracBits.
class BigFixed {
 public:
  static constexpr int kFracBits = 2240;  // below 2^-2148, the smallest square of a subnormal
  static constexpr int kLimbs = 72;       // 4608 bits: up to ~2^2300 before the sign bit

  // Adds v * 2^exp2.
  void add(int128 v, int exp2);
  void add(const BigFixed& other);
  // Multiplies by m (a view that repeats each element m times).
  void mul(std::uint64_t m);
  // The value rounded once to the nearest float64 (ties to even; overflow gives +-inf).
  double to_double() const;

  // Exchange format for merging across processes with a plain integer SUM all-reduce:
  // kDigits base-2^32 digits, each in an int64. Digit-wise sums of up to 2^31 such arrays
  // do not overflow; from_digit_sums() carries them back into one exact value.
  static constexpr int kDigits = kLimbs * 2;
  void to_digits(std::int64_t* out) const;
  static BigFixed from_digit_sums(const std::int64_t* digits);

 private:
  void add_shifted_u64(std::uint64_t v, int bit, bool negative);
  std::uint64_t limb_[kLimbs] = {};
};

// Per-exponent bins of m and m*m for one kernel float type K.
template <class K> struct ExactBins {
  using B = FloatBits<K>;
  static constexpr int kBins = (1 << (sizeof(K) == 4 ? 8 : 11));
  // x = m * 2^(E - kLsbBias) with E = max(exponent field, 1).
  static constexpr int kLsbBias = B::kExpBias + B::kMantBits;

  std::vector<int128> sum = std::vector<int128>(kBins);
  std::vector<uint128> sumsq = std::vector<uint128>(kBins);
  std::uint64_t pending = 0;  // float64 squares: additions since the last fold (uint128 bins
                              // hold 2^22 squares of 53-bit mantissas)
  BigFixed folded_sumsq;

  // Engines add into the bins themselves (csrc/cpu/kernels/v1.cpp: add_exact); float64
  // squares must be folded every kFoldSquaresEvery additions.
  static constexpr std::uint64_t kFoldSquaresEvery = std::uint64_t(1) << 21;
  void fold_squares();
  // Folds every bin into `sum` and `sumsq` (merging threads, devices and shards).
  void fold_into(BigFixed& sum_out, BigFixed& sumsq_out) const;
};

extern template struct ExactBins<float>;
extern template struct ExactBins<double>;

}  // namespace histgpu
