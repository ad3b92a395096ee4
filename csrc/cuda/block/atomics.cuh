// Multi-word integer addition with word-wise atomics (exact sums of the v1 pass).
#pragma once
#include "cuda/simt.hpp"

namespace histgpu::cuda {

// Adds the NW-word little-endian integer v into w, modulo 2^(64 NW). Every wrap of a word is
// seen by exactly one adder (old + add < old), who carries it into the next word.
template <int NW> HISTGPU_DEVICE void atomic_add_words(simt::u64* w, const simt::u64 (&v)[NW]) {
  simt::u64 carry = 0;
#pragma unroll
  for (int i = 0; i < NW; ++i) {
    const simt::u64 add = v[i] + carry;
    simt::u64 next = (add < carry) ? 1 : 0;  // v[i] + carry wrapped (then add == 0)
    if (add != 0) {
      const simt::u64 old = simt::atomic_add(&w[i], add);
      next += (old + add < old) ? 1 : 0;
    }
    carry = next;
  }
}

}  // namespace histgpu::cuda
