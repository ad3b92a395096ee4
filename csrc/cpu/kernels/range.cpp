// Range pass of the CPU engine (compiled per instruction set; see isa.hpp).
#include <algorithm>
#include <cmath>
#include <type_traits>

#include "cpu/kernels/isa.hpp"

namespace histgpu::cpu::HISTGPU_ISA {
namespace {

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
  constexpr std::size_t kStep = 256;  // values per prefetch of the next ones
  for (std::size_t i0 = 0; i0 < n; i0 += kStep) {
    prefetch_ahead(bits + i0, kStep * sizeof(Key));
    const std::size_t end = std::min(n, i0 + kStep);
    for (std::size_t i = i0; i < end; ++i) {
      const Key b = bits[i];
      const Key key = b ^ (static_cast<Key>(static_cast<SKey>(b) >> kTop) | B::kSign);
      lo = std::min(lo, key);
      hi = std::max(hi, key);
      top = std::max(top, static_cast<Key>(b & ~B::kSign));
    }
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

}  // namespace

void range_f32(const float* x, std::size_t n, RangeAcc<float>& acc) { range_block<float>(x, n, acc); }
void range_f64(const double* x, std::size_t n, RangeAcc<double>& acc) { range_block<double>(x, n, acc); }

}  // namespace histgpu::cpu::HISTGPU_ISA
