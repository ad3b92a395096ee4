#include "core/exact_sum.hpp"

#include <cmath>

namespace histgpu {

void BigFixed::add_shifted_u64(std::uint64_t v, int bit, bool negative) {
  // Adds (or subtracts) v * 2^bit in two's complement, carrying through the upper limbs.
  int limb = bit / 64, off = bit % 64;
  std::uint64_t parts[2] = {v << off, off ? (v >> (64 - off)) : 0};
  if (!negative) {
    unsigned carry = 0;
    for (int i = limb; i < kLimbs; ++i) {
      const std::uint64_t p = (i - limb < 2) ? parts[i - limb] : 0;
      if (p == 0 && carry == 0 && i - limb >= 2) break;
      const uint128 s = static_cast<uint128>(limb_[i]) + p + carry;
      limb_[i] = static_cast<std::uint64_t>(s);
      carry = static_cast<unsigned>(s >> 64);
    }
  } else {
    unsigned borrow = 0;
    for (int i = limb; i < kLimbs; ++i) {
      const std::uint64_t p = (i - limb < 2) ? parts[i - limb] : 0;
      if (p == 0 && borrow == 0 && i - limb >= 2) break;
      const uint128 d = static_cast<uint128>(limb_[i]) - p - borrow;
      limb_[i] = static_cast<std::uint64_t>(d);
      borrow = static_cast<unsigned>((d >> 64) & 1);
    }
  }
}

void BigFixed::add(int128 v, int exp2) {
  if (v == 0) return;
  const bool negative = v < 0;
  const uint128 mag = negative ? static_cast<uint128>(-(v + 1)) + 1 : static_cast<uint128>(v);
  const int bit = exp2 + kFracBits;  // always >= 0 for float32/float64 inputs
  add_shifted_u64(static_cast<std::uint64_t>(mag), bit, negative);
  add_shifted_u64(static_cast<std::uint64_t>(mag >> 64), bit + 64, negative);
}

void BigFixed::add(const BigFixed& other) {
  unsigned carry = 0;
  for (int i = 0; i < kLimbs; ++i) {
    const uint128 s = static_cast<uint128>(limb_[i]) + other.limb_[i] + carry;
    limb_[i] = static_cast<std::uint64_t>(s);
    carry = static_cast<unsigned>(s >> 64);
  }
}

void BigFixed::mul(std::uint64_t m) {
  // Two's complement multiplication by a non-negative factor keeps the sign.
  std::uint64_t carry = 0;
  for (int i = 0; i < kLimbs; ++i) {
    const uint128 p = static_cast<uint128>(limb_[i]) * m + carry;
    limb_[i] = static_cast<std::uint64_t>(p);
    carry = static_cast<std::uint64_t>(p >> 64);
  }
}

void BigFixed::to_digits(std::int64_t* out) const {
  for (int i = 0; i < kLimbs; ++i) {
    out[2 * i] = static_cast<std::int64_t>(limb_[i] & 0xffffffffu);
    out[2 * i + 1] = static_cast<std::int64_t>(limb_[i] >> 32);
  }
}

BigFixed BigFixed::from_digit_sums(const std::int64_t* digits) {
  // Each digit sum may exceed 32 bits (or be negative after wrap-free subtraction); carry it
  // upwards, modulo 2^(64 * kLimbs) like the two's complement additions it stands for.
  BigFixed r;
  int128 carry = 0;
  for (int d = 0; d < kDigits; ++d) {
    const int128 v = static_cast<int128>(digits[d]) + carry;
    const auto low = static_cast<std::uint64_t>(static_cast<uint128>(v) & 0xffffffffu);
    carry = (v - static_cast<int128>(low)) / (int128(1) << 32);
    r.limb_[d / 2] |= low << (32 * (d % 2));
  }
  return r;
}

double BigFixed::to_double() const {
  std::uint64_t mag[kLimbs];
  const bool negative = (limb_[kLimbs - 1] >> 63) != 0;
  unsigned carry = 1;
  for (int i = 0; i < kLimbs; ++i) {
    if (negative) {
      const uint128 s = static_cast<uint128>(~limb_[i]) + carry;
      mag[i] = static_cast<std::uint64_t>(s);
      carry = static_cast<unsigned>(s >> 64);
    } else {
      mag[i] = limb_[i];
    }
  }
  int top = -1;  // highest set bit
  for (int i = kLimbs - 1; i >= 0 && top < 0; --i)
    if (mag[i]) top = i * 64 + 63 - __builtin_clzll(mag[i]);
  if (top < 0) return 0.0;
  auto bit_at = [&](int b) -> unsigned { return b < 0 ? 0u : (mag[b / 64] >> (b % 64)) & 1u; };
  // Keep 53 bits, or fewer where the result is subnormal (its last bit weighs 2^-1074).
  const int min_lsb = kFracBits - 1074;
  const int lsb = std::max(top - 52, min_lsb);
  std::uint64_t m = 0;
  for (int b = top; b >= lsb; --b) m = (m << 1) | bit_at(b);
  const unsigned round = bit_at(lsb - 1);
  bool sticky = false;
  for (int b = lsb - 2; b >= 0 && !sticky; --b) {
    if (b % 64 == 63 && mag[b / 64] == 0) { b -= 63; continue; }
    sticky = bit_at(b);
  }
  if (round && (sticky || (m & 1))) ++m;
  const double r = std::ldexp(static_cast<double>(m), lsb - kFracBits);
  return negative ? -r : r;
}

template <class K> void ExactBins<K>::fold_squares() {
  for (int e = 0; e < kBins; ++e) {
    if (sumsq[e]) {
      const uint128 v = sumsq[e];
      // Split so that each part fits the signed adder.
      folded_sumsq.add(static_cast<int128>(v >> 1), 2 * (e - kLsbBias) + 1);
      folded_sumsq.add(static_cast<int128>(v & 1), 2 * (e - kLsbBias));
      sumsq[e] = 0;
    }
  }
  pending = 0;
}

template <class K> void ExactBins<K>::fold_into(BigFixed& sum_out, BigFixed& sumsq_out) const {
  // fold_squares' splitting, straight into sumsq_out (no copy of the bins).
  for (int e = 0; e < kBins; ++e) {
    sum_out.add(sum[e], e - kLsbBias);
    if (const uint128 v = sumsq[e]) {
      sumsq_out.add(static_cast<int128>(v >> 1), 2 * (e - kLsbBias) + 1);
      sumsq_out.add(static_cast<int128>(v & 1), 2 * (e - kLsbBias));
    }
  }
  sumsq_out.add(folded_sumsq);
}

template struct ExactBins<float>;
template struct ExactBins<double>;

}  // namespace histgpu
