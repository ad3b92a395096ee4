// Host entry points of the kernels in kernels.cu (host code includes this without CUDA
// headers: streams travel as void*).
#pragma once
#include <cstdint>
#include <string>

#include "cuda/device_types.hpp"

namespace histgpu::cuda {

enum class Pass { Range = 0, Count = 1, V1 = 2 };

constexpr int kThreadsPerBlock = 256;

// Launches one pass over a launch group (tensors of one dtype and one layout).
// grid: blocks; smem: dynamic shared memory bytes. Returns a CUDA error code (0: success).
int launch_pass(Pass pass, DType dtype, bool contiguous, const LaunchArgs& args, int grid,
                int smem, void* stream);

// Blocks of `pass` that fit on one multiprocessor with `smem` bytes of dynamic shared memory;
// also raises the kernel's dynamic shared memory limit where smem needs it.
int blocks_per_sm(Pass pass, DType dtype, bool contiguous, int smem);

// The device planner: for every tensor of the batch with k > 0, DevPlan and T[0..k] from its
// range stats (one thread per threshold). total = sum of k (the counts_off prefix).
int launch_plan(const DevTensor* tensors, int num_tensors, const DevStats* stats, DevPlan* plans,
                char* thresholds, std::uint64_t total, void* stream);

// The CUDA architectures the kernels were compiled for (CMake's list).
std::string compiled_architectures();

}  // namespace histgpu::cuda
