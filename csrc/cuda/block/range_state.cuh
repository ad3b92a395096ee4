// Per-thread range accumulators, reduced over a warp and merged into a tensor's DevStats.
// The number of finite values is not counted per element: it is the number of elements minus
// the non-finite ones (the planner and the host derive it).
#pragma once
#include "core/ordered.hpp"
#include "cuda/device_types.hpp"
#include "cuda/markers.hpp"
#include "cuda/simt.hpp"

namespace histgpu::cuda {

// Keys in the kernel type's own width (32-bit compares for float32 kernels).
template <class K> struct RangeState {
  using Key = typename FloatBits<K>::UInt;
  Key kmin, kmax;
  simt::u64 nan, posinf, neginf;

  HISTGPU_DEVICE void reset() {
    kmin = static_cast<Key>(~Key(0));
    kmax = 0;
    nan = posinf = neginf = 0;
  }
  HISTGPU_DEVICE void add_nonfinite(Key b) {
    using B = FloatBits<K>;
    if ((b & ~B::kSign) != B::kExpMask) ++nan;
    else if (b & B::kSign) ++neginf;
    else ++posinf;
  }
  HISTGPU_DEVICE void add_key(Key key) {
    kmin = key < kmin ? key : kmin;
    kmax = key > kmax ? key : kmax;
  }
  // Finite x updates min/max; others are counted by kind (the rare branch).
  HISTGPU_DEVICE void add(K x) {
    const Key b = bits_of(x);
    const bool finite = is_finite_bits<K>(b);
    const Key key = ordered_key(x);
    kmin = finite && key < kmin ? key : kmin;
    kmax = finite && key > kmax ? key : kmax;
    if (!finite) {
      HISTGPU_MARK_RARE();
      add_nonfinite(b);
    }
  }
  // Warp reduction, then one set of atomics per warp; called by every thread of the block.
  HISTGPU_DEVICE void flush(DevStats* s) {
    simt::u64 lo = kmin, hi = kmax;
#pragma unroll
    for (int off = simt::kWarp / 2; off > 0; off /= 2) {
      const simt::u64 a = simt::shfl_xor(lo, off);
      const simt::u64 b = simt::shfl_xor(hi, off);
      lo = a < lo ? a : lo;
      hi = b > hi ? b : hi;
      nan += simt::shfl_xor(nan, off);
      posinf += simt::shfl_xor(posinf, off);
      neginf += simt::shfl_xor(neginf, off);
    }
    if (simt::lane_id() == 0) {
      if (lo != static_cast<Key>(~Key(0))) {  // some finite value (no finite key is all ones)
        simt::atomic_min(&s->kmin, lo);
        simt::atomic_max(&s->kmax, hi);
      }
      if (nan) simt::atomic_add(&s->nan, nan);
      if (posinf) simt::atomic_add(&s->posinf, posinf);
      if (neginf) simt::atomic_add(&s->neginf, neginf);
    }
    reset();
  }
};

}  // namespace histgpu::cuda
