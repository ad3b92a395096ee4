// Order-preserving maps between floats and unsigned integers.
// key(a) < key(b) exactly when a < b, with -0.0 < +0.0 (so min/max are selections that never
// depend on the order of the data) and NaNs beyond the infinities.
#pragma once
#include <cstdint>
#include <cstring>

#include "core/hd.hpp"

namespace histgpu {

template <class K> struct FloatBits;
template <> struct FloatBits<float> {
  using UInt = std::uint32_t;
  static constexpr UInt kSign = 0x80000000u;
  static constexpr UInt kExpMask = 0x7f800000u;
  static constexpr int kMantBits = 23;
  static constexpr int kExpBias = 127;
};
template <> struct FloatBits<double> {
  using UInt = std::uint64_t;
  static constexpr UInt kSign = 0x8000000000000000ull;
  static constexpr UInt kExpMask = 0x7ff0000000000000ull;
  static constexpr int kMantBits = 52;
  static constexpr int kExpBias = 1023;
};

template <class K> HISTGPU_HD typename FloatBits<K>::UInt bits_of(K x) {
  typename FloatBits<K>::UInt u;
  std::memcpy(&u, &x, sizeof u);
  return u;
}
template <class K> HISTGPU_HD K from_bits(typename FloatBits<K>::UInt u) {
  K x;
  std::memcpy(&x, &u, sizeof x);
  return x;
}

template <class K> HISTGPU_HD typename FloatBits<K>::UInt ordered_key(K x) {
  using B = FloatBits<K>;
  auto u = bits_of(x);
  return (u & B::kSign) ? ~u : (u | B::kSign);
}
template <class K> HISTGPU_HD K from_ordered_key(typename FloatBits<K>::UInt key) {
  using B = FloatBits<K>;
  auto u = (key & B::kSign) ? (key & ~B::kSign) : ~key;
  return from_bits<K>(u);
}

template <class K> HISTGPU_HD bool is_finite_bits(typename FloatBits<K>::UInt u) {
  using B = FloatBits<K>;
  return (u & B::kExpMask) != B::kExpMask;
}

}  // namespace histgpu
