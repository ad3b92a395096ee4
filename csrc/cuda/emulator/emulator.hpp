// The CUDA kernels, executed on the host: a grid runs block after block, and the threads of a
// block run as fibers on the calling thread (csrc/cuda/simt.hpp is the kernels' side of it).
//
// A fiber runs until it reaches a block barrier or a warp collective, then yields. A barrier
// releases once every thread of the block that has not exited reached it; a warp collective
// computes its results once all 32 lanes of the warp reached it (with the same operation).
// Anything else -- a barrier some threads skip, a collective some lanes skip, lanes meeting in
// different collectives -- is reported as an error instead of hanging: the emulator is also a
// checker of the kernels' synchronisation.
//
// Shared memory is fresh for every block and filled with a non-zero pattern, as garbage would
// be on a GPU, so a kernel that reads shared memory it never wrote gives wrong results here.
// Shared memory and emulated device allocations end at an inaccessible guard page (and start
// after one): a kernel that reads or writes past them raises std::runtime_error naming the
// address, where a GPU would stop with an illegal-address error.
#pragma once
#include <cstddef>
#include <cstdint>

#if !defined(__CUDACC__)
// The host stand-in of CUDA's 16-byte vector type.
struct uint4 {
  unsigned x, y, z, w;
};
#endif

namespace histgpu::simt::emu {

struct LaunchConfig {
  unsigned grid = 1;
  unsigned block = 1;  // threads per block (a multiple of 32)
  std::size_t dynamic_smem = 0;
  std::size_t static_smem = 0;
};

// Runs thread_main(ctx) for every thread of every block of the grid; throws
// std::runtime_error when the kernel deadlocks, diverges in a collective or throws.
void launch(const LaunchConfig& config, void (*thread_main)(void*), void* ctx);

// Inside a launch: the calling thread's coordinates and its block's shared memory.
unsigned thread_rank();
unsigned block_rank();
unsigned block_size();
unsigned grid_size();
unsigned char* dynamic_smem();
void* static_smem();

// Inside a launch: the synchronisation points.
void sync_block();
std::uint64_t shfl_xor(std::uint64_t value, int lane_mask);
std::uint32_t match_any(std::uint32_t value);
std::uint32_t ballot(bool predicate);

// Memory whose first byte follows a guard page and whose last byte precedes one (aligned to
// 256 bytes, like device memory), filled with `fill`; for the emulated device's allocations.
void* guarded_alloc(std::size_t bytes, unsigned char fill);
void guarded_free(void* p);

// Work done by the emulator on this OS thread since it started (for the docs' figures).
struct Counters {
  std::uint64_t blocks = 0, threads = 0, switches = 0;
};
Counters counters();

}  // namespace histgpu::simt::emu
