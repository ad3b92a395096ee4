// The range pass: finite min/max (as ordered keys) and non-finite counts of every tensor.
#pragma once
#include "cuda/block/range_state.cuh"
#include "cuda/device_types.hpp"
#include "cuda/simt.hpp"

namespace histgpu::cuda {

// A pass (see batch_kernel.cuh): init() once per block; begin() when the block starts on a
// tensor; skip() (block-uniform); operator()(x, valid) per element; end_chunk() per thread
// after each chunk; flush() when the block leaves the tensor.
template <class K> struct RangePass {
  static constexpr bool kVector4 = false;
  RangeState<K> st;
  HISTGPU_DEVICE void init(unsigned char*, int) { st.reset(); }
  HISTGPU_DEVICE void begin(const LaunchArgs&, const DevTensor&, int) {}
  HISTGPU_DEVICE bool skip() const { return false; }
  HISTGPU_DEVICE void operator()(K x, bool valid) {
    if (valid) st.add(x);
  }
  HISTGPU_DEVICE void end_chunk(const LaunchArgs&, const DevTensor&, int) {}
  HISTGPU_DEVICE void flush(const LaunchArgs& a, const DevTensor&, int ti) { st.flush(&a.stats[ti]); }
};

}  // namespace histgpu::cuda
