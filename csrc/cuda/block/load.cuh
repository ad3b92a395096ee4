// Block-wide iteration over one chunk [a, b) of a tensor, elements converted exactly to the
// kernel type (core/dtypes.hpp). Every thread of the block calls f(x, valid) the same number
// of times -- valid is false past the end -- so that the passes may use warp collectives.
#pragma once
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "core/dtypes.hpp"
#include "cuda/device_types.hpp"
#include "cuda/markers.hpp"
#include "cuda/simt.hpp"

namespace histgpu::cuda {

using simt::u32;
using simt::u64;

// 16-byte loads in flight per thread: 8 values of 4 bytes or less each, but only 2 vectors of
// float64 (4 values), whose wider arithmetic would otherwise spill registers.
template <class S> constexpr int kUnroll = sizeof(S) == 8 ? 2 : 4;


template <DType D> HISTGPU_DEVICE typename DTypeTraits<D>::Storage load_raw(const char* p, bool aligned) {
  using S = typename DTypeTraits<D>::Storage;
  S r;
  if (aligned) {
    r = *reinterpret_cast<const S*>(p);
  } else {
    unsigned char tmp[sizeof(S)];
#pragma unroll
    for (int j = 0; j < static_cast<int>(sizeof(S)); ++j) tmp[j] = static_cast<unsigned char>(p[j]);
    memcpy(&r, tmp, sizeof r);
  }
  return r;
}

// Element at `p` of dtype `dtype` (one whose kernel type is K), converted: the generic path's
// run-time switch, uniform across a launch group (one dtype per group).
template <class K> HISTGPU_DEVICE K load_any(const char* p, int dtype, bool aligned) {
  switch (dtype) {
#define HISTGPU_X(N, code, NAME, S, KK, ...)                                               \
  case code:                                                                               \
    if constexpr (std::is_same_v<KK, K>) return convert<DType::N>(load_raw<DType::N>(p, aligned)); \
    break;
    HISTGPU_DTYPE_TABLE(HISTGPU_X)
#undef HISTGPU_X
    default: break;
  }
  return K{};
}

// The elements of one 16-byte vector, to the pass (four at a time where it takes them so).
template <DType D, class F> HISTGPU_DEVICE void take_vector(const uint4& w, bool valid, F& f) {
  using S = typename DTypeTraits<D>::Storage;
  constexpr int V = 16 / sizeof(S);
  S r[V];
  memcpy(r, &w, sizeof r);
  if constexpr (F::kVector4 && V % 4 == 0) {
#pragma unroll
    for (int j = 0; j < V; j += 4) {
      const typename DTypeTraits<D>::Kernel x4[4] = {convert<D>(r[j]), convert<D>(r[j + 1]), convert<D>(r[j + 2]),
                                                     convert<D>(r[j + 3])};
      f.add4(x4, valid);
    }
  } else {
#pragma unroll
    for (int j = 0; j < V; ++j) f(convert<D>(r[j]), valid);
  }
}

// A contiguous tensor of dtype D: 16-byte loads, kUnroll<S> in flight per thread.
template <DType D, class F> HISTGPU_DEVICE void for_contiguous(const DevTensor& t, u64 a, u64 b, F& f) {
  using S = typename DTypeTraits<D>::Storage;
  constexpr int V = 16 / sizeof(S);
  const u64 tid = simt::thread_rank(), bdim = simt::block_size();
  const S* p = reinterpret_cast<const S*>(t.base);
  const u64 addr = reinterpret_cast<u64>(p + a);
  u64 head = ((16 - (addr & 15)) & 15) / sizeof(S);
  head = head < b - a ? head : b - a;
  const u64 s = a + head;
  const u64 nvec = (b - s) / V;
  const u64 tail = s + nvec * V;
  for (u64 i0 = 0; i0 < head; i0 += bdim) {
    const u64 i = a + i0 + tid;
    const bool valid = i < a + head;
    f(convert<D>(valid ? p[i] : S{}), valid);
  }
  const uint4* vp = reinterpret_cast<const uint4*>(p + s);
  constexpr int U = kUnroll<S>;
  const u64 step = bdim * U;
  // Iterations in which every thread's U vectors exist (no checks), then at most one
  // partial iteration: the hot loop carries no bounds logic.
  const u64 full = nvec / step * step;
  u64 v0 = 0;
  for (; v0 < full; v0 += step) {
    HISTGPU_MARK_BEGIN();
    uint4 w[U];
#pragma unroll
    for (int u = 0; u < U; ++u) w[u] = simt::load16(vp + v0 + static_cast<u64>(u) * bdim + tid);
#pragma unroll
    for (int u = 0; u < U; ++u) take_vector<D>(w[u], true, f);
    HISTGPU_MARK_END();
  }
  if (v0 < nvec) {
    uint4 w[U];
#pragma unroll
    for (int u = 0; u < U; ++u) {
      const u64 v = v0 + static_cast<u64>(u) * bdim + tid;
      w[u] = v < nvec ? simt::load16(vp + v) : uint4{0, 0, 0, 0};
    }
#pragma unroll
    for (int u = 0; u < U; ++u) take_vector<D>(w[u], v0 + static_cast<u64>(u) * bdim + tid < nvec, f);
  }
  for (u64 i0 = tail; i0 < b; i0 += bdim) {
    const u64 i = i0 + tid;
    const bool valid = i < b;
    f(convert<D>(valid ? p[i] : S{}), valid);
  }
}

// Any dtype of kernel type K and any strided view: element i of the row-major order sits at
// sum(idx_d * stride_d); neighbouring threads take neighbouring i.
template <class K, class F> HISTGPU_DEVICE void for_strided(const DevTensor& t, u64 a, u64 b, F& f) {
  const int nd = t.ndim;
  const bool aligned = t.aligned != 0;
  const int dtype = t.dtype;
  const u64 tid = simt::thread_rank(), bdim = simt::block_size();
  for (u64 i0 = a; i0 < b; i0 += bdim) {
    const u64 i = i0 + tid;
    const bool valid = i < b;
    K x{};
    if (valid) {
      u64 r = i;
      std::int64_t off = 0;
      for (int d = nd - 1; d > 0; --d) {
        const u64 ext = static_cast<u64>(t.shape[d]);
        u64 q;
        if (((r | ext) >> 32) == 0) q = static_cast<u32>(r) / static_cast<u32>(ext);
        else q = r / ext;
        off += static_cast<std::int64_t>(r - q * ext) * t.strides[d];
        r = q;
      }
      off += static_cast<std::int64_t>(r) * t.strides[0];
      x = load_any<K>(t.base + off, dtype, aligned);
    }
    f(x, valid);
  }
}

// kContig: a dedicated vectorised kernel for dtype D; otherwise the generic path for D's
// kernel type (D is then Float32 or Float64 and stands for every dtype of that kernel type).
template <DType D, bool kContig, class F> HISTGPU_DEVICE void for_chunk(const DevTensor& t, u64 a, u64 b, F& f) {
  if constexpr (kContig) for_contiguous<D>(t, a, b, f);
  else for_strided<typename DTypeTraits<D>::Kernel>(t, a, b, f);
}

}  // namespace histgpu::cuda
