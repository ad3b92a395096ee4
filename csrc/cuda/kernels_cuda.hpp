// The GPU launches of the kernels (kernels.cu), for the CUDA runtime (runtime_cuda.cpp). They
// return CUDA error codes (0: success).
#pragma once
#include <cstdint>

#include "cuda/device_types.hpp"
#include "cuda/policy.hpp"

namespace histgpu::cuda {

int cuda_launch_pass(Pass pass, DType dtype, bool contiguous, CountMode mode, const LaunchArgs& args, int grid,
                     int smem, void* stream);
int cuda_blocks_per_sm(Pass pass, DType dtype, bool contiguous, CountMode mode, int smem, int* blocks);
int cuda_launch_plan(const DevTensor* tensors, int num_tensors, const DevStats* stats, DevPlan* plans, char* thresholds,
                     std::uint64_t total, void* stream);
const char* cuda_compiled_architectures();

}  // namespace histgpu::cuda
