// Per-thread range accumulators, reduced over a warp and merged into a tensor's DevStats.
// The number of finite values is not counted per element: it is the number of elements minus
// the non-finite ones (the planner and the host derive it).
#pragma once
#include "core/ordered.hpp"
#include "cuda/device_types.hpp"
#include "cuda/simt.hpp"

namespace histgpu::cuda {

struct RangeState {
  simt::u64 kmin, kmax, nan, posinf, neginf;

  HISTGPU_DEVICE void reset() {
    kmin = ~0ull;
    kmax = 0;
    nan = posinf = neginf = 0;
  }
  template <class K> HISTGPU_DEVICE void add_nonfinite(typename FloatBits<K>::UInt b) {
    using B = FloatBits<K>;
    if ((b & ~B::kSign) != B::kExpMask) ++nan;
    else if (b & B::kSign) ++neginf;
    else ++posinf;
  }
  HISTGPU_DEVICE void add_key(simt::u64 key) {
    kmin = key < kmin ? key : kmin;
    kmax = key > kmax ? key : kmax;
  }
  // Finite x updates min/max; others are counted by kind.
  template <class K> HISTGPU_DEVICE void add(K x) {
    const auto b = bits_of(x);
    if (is_finite_bits<K>(b)) add_key(ordered_key(x));
    else add_nonfinite<K>(b);
  }
  // Warp reduction, then one set of atomics per warp; called by every thread of the block.
  HISTGPU_DEVICE void flush(DevStats* s) {
#pragma unroll
    for (int off = simt::kWarp / 2; off > 0; off /= 2) {
      const simt::u64 a = simt::shfl_xor(kmin, off);
      const simt::u64 b = simt::shfl_xor(kmax, off);
      kmin = a < kmin ? a : kmin;
      kmax = b > kmax ? b : kmax;
      nan += simt::shfl_xor(nan, off);
      posinf += simt::shfl_xor(posinf, off);
      neginf += simt::shfl_xor(neginf, off);
    }
    if (simt::lane_id() == 0) {
      if (kmin != ~0ull) {
        simt::atomic_min(&s->kmin, kmin);
        simt::atomic_max(&s->kmax, kmax);
      }
      if (nan) simt::atomic_add(&s->nan, nan);
      if (posinf) simt::atomic_add(&s->posinf, posinf);
      if (neginf) simt::atomic_add(&s->neginf, neginf);
    }
    reset();
  }
};

}  // namespace histgpu::cuda
