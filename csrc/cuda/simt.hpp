// The SIMT primitives the kernels are written against, for both of their builds:
//  * nvcc: the CUDA intrinsics themselves (threadIdx, __syncthreads, warp shuffles, atomics);
//  * the host compiler: the emulator (csrc/cuda/emulator/), which runs the very same kernel
//    source block by block and thread by thread over host memory, so that CI, without a GPU,
//    executes the kernels the GPU runs. There atomics are plain read-modify-writes (the
//    threads of an emulated grid never run at the same time), warp collectives gather the
//    lanes of a warp before any of them continues, and a block barrier is a phase boundary.
//
// Warp collectives are always called by all 32 lanes of a warp with the full mask (kernels
// keep their loops warp-uniform): that is well-defined on every GPU since Volta, and it is
// what the emulator checks.
#pragma once
#include <cstdint>
#include <cstring>

#if defined(__CUDACC__)
#define HISTGPU_DEVICE __device__ __forceinline__
#else
#define HISTGPU_DEVICE inline
#include "cuda/emulator/emulator.hpp"
#endif

namespace histgpu::simt {

constexpr unsigned kWarp = 32;
constexpr unsigned kFullMask = 0xffffffffu;
using u32 = std::uint32_t;
using u64 = unsigned long long;

#if defined(__CUDACC__)

HISTGPU_DEVICE unsigned thread_rank() { return threadIdx.x; }
HISTGPU_DEVICE unsigned block_rank() { return blockIdx.x; }
HISTGPU_DEVICE unsigned block_size() { return blockDim.x; }
HISTGPU_DEVICE unsigned grid_size() { return gridDim.x; }
HISTGPU_DEVICE void sync_block() { __syncthreads(); }
HISTGPU_DEVICE u64 shfl_xor(u64 v, int lane_mask) { return __shfl_xor_sync(kFullMask, v, lane_mask); }
HISTGPU_DEVICE u32 shfl_xor(u32 v, int lane_mask) { return __shfl_xor_sync(kFullMask, v, lane_mask); }
HISTGPU_DEVICE u32 match_any(u32 v) { return __match_any_sync(kFullMask, v); }
HISTGPU_DEVICE u32 ballot(bool p) { return __ballot_sync(kFullMask, p); }
HISTGPU_DEVICE bool any(bool p) { return __any_sync(kFullMask, p) != 0; }
HISTGPU_DEVICE u32 atomic_add(u32* p, u32 v) { return atomicAdd(p, v); }
HISTGPU_DEVICE u64 atomic_add(u64* p, u64 v) { return atomicAdd(p, v); }
HISTGPU_DEVICE u64 atomic_min(u64* p, u64 v) { return atomicMin(p, v); }
HISTGPU_DEVICE u64 atomic_max(u64* p, u64 v) { return atomicMax(p, v); }
// A 16-byte load through the read-only data cache.
HISTGPU_DEVICE uint4 load16(const uint4* p) { return __ldg(p); }
HISTGPU_DEVICE int popc(u32 v) { return __popc(v); }
HISTGPU_DEVICE int first_lane(u32 v) { return __ffs(static_cast<int>(v)) - 1; }
// The high word of (hi:lo) << s, 0 <= s < 32.
HISTGPU_DEVICE u32 funnel_left(u32 lo, u32 hi, u32 s) { return __funnelshift_l(lo, hi, s); }
// (a2:a1:a0) += (b2:b1:b0), one carry chain.
HISTGPU_DEVICE void add3_words(u32& a0, u32& a1, u32& a2, u32 b0, u32 b1, u32 b2) {
  asm("add.cc.u32 %0, %0, %3;\n\taddc.cc.u32 %1, %1, %4;\n\taddc.u32 %2, %2, %5;"
      : "+r"(a0), "+r"(a1), "+r"(a2)
      : "r"(b0), "r"(b1), "r"(b2));
}

#else

inline unsigned thread_rank() { return emu::thread_rank(); }
inline unsigned block_rank() { return emu::block_rank(); }
inline unsigned block_size() { return emu::block_size(); }
inline unsigned grid_size() { return emu::grid_size(); }
inline void sync_block() { emu::sync_block(); }
inline u64 shfl_xor(u64 v, int lane_mask) { return emu::shfl_xor(v, lane_mask); }
inline u32 shfl_xor(u32 v, int lane_mask) { return static_cast<u32>(emu::shfl_xor(v, lane_mask)); }
inline u32 match_any(u32 v) { return emu::match_any(v); }
inline u32 ballot(bool p) { return emu::ballot(p); }
inline bool any(bool p) { return emu::ballot(p) != 0; }
template <class T> inline T atomic_add(T* p, T v) {
  const T old = *p;
  *p = old + v;
  return old;
}
inline u64 atomic_min(u64* p, u64 v) {
  const u64 old = *p;
  *p = v < old ? v : old;
  return old;
}
inline u64 atomic_max(u64* p, u64 v) {
  const u64 old = *p;
  *p = v > old ? v : old;
  return old;
}
inline uint4 load16(const uint4* p) {
  uint4 v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
inline int popc(u32 v) { return __builtin_popcount(v); }
inline int first_lane(u32 v) { return __builtin_ffs(static_cast<int>(v)) - 1; }
inline u32 funnel_left(u32 lo, u32 hi, u32 s) { return s ? (hi << s) | (lo >> (32 - s)) : hi; }
inline void add3_words(u32& a0, u32& a1, u32& a2, u32 b0, u32 b1, u32 b2) {
  const u64 low = (static_cast<u64>(a1) << 32 | a0) + (static_cast<u64>(b1) << 32 | b0);
  const u32 carry = low < (static_cast<u64>(b1) << 32 | b0) ? 1u : 0u;
  a0 = static_cast<u32>(low);
  a1 = static_cast<u32>(low >> 32);
  a2 += b2 + carry;
}

#endif

// 2^n as a double, -1022 <= n <= 1023 (exact, no libm).
HISTGPU_DEVICE double pow2(int n) {
  const u64 bits = static_cast<u64>(n + 1023) << 52;
  double d;
  memcpy(&d, &bits, sizeof d);
  return d;
}

HISTGPU_DEVICE unsigned lane_id() { return thread_rank() & (kWarp - 1); }

}  // namespace histgpu::simt
