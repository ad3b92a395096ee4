// The emulated launches of the kernels (kernels_host.cpp), for the emulated runtime.
#pragma once
#include <cstdint>

#include "cuda/device_types.hpp"
#include "cuda/policy.hpp"

namespace histgpu::cuda {

void emulate_pass(Pass pass, DType dtype, bool contiguous, CountMode mode, const LaunchArgs& args, int grid, int smem);
void emulate_plan(const DevTensor* tensors, int num_tensors, const DevStats* stats, DevPlan* plans, char* thresholds,
                  std::uint64_t total, int grid);

}  // namespace histgpu::cuda
