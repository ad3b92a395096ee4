// The batch kernels and the device planner for the GPU: thin __global__ wrappers around the
// templates the emulator runs on the host too (batch_kernel.cuh, passes/), and the launches.
//
// Bit-exactness (docs/semantics.md §1.4): counts are integers (32-bit per block in shared memory,
// merged into 64-bit global counters), min/max are selections of ordered keys, and sums are
// exact fixed-point words that the host folds into one correctly rounded double. Values are
// converted exactly as the CPU engine converts them (core/dtypes.hpp) and compared with the
// thresholds core plans (or the device planner, checked against core's plan).
#include <cuda_runtime.h>

#include <mutex>
#include <set>
#include <tuple>

#include "cuda/batch_kernel.cuh"
#include "cuda/dispatch.hpp"
#include "cuda/kernels_cuda.hpp"

#ifndef HISTGPU_CUDA_ARCH_LIST
#define HISTGPU_CUDA_ARCH_LIST "unknown"
#endif

namespace histgpu::cuda {

template <class P> constexpr int kPassThreads = kThreadsPerBlock;
template <class K> constexpr int kPassThreads<V1Pass<K>> = threads_per_block(Pass::V1);

template <DType D, bool C, class P>
__global__ void __launch_bounds__(kPassThreads<P>) batch_kernel(const LaunchArgs args, int smem_bytes) {
  extern __shared__ __align__(16) unsigned char smem[];
  __shared__ __align__(16) BlockShared shared;
  batch_block<D, C, P>(args, smem_bytes, smem, shared);
}

__global__ void __launch_bounds__(kThreadsPerBlock)
    plan_kernel(const DevTensor* tensors, int num_tensors, const DevStats* stats, DevPlan* plans, char* thresholds,
                unsigned long long total) {
  plan_block(tensors, num_tensors, stats, plans, thresholds, total);
}

namespace {

struct KernelPointer {
  template <DType D, bool C, class P> const void* run() { return reinterpret_cast<const void*>(&batch_kernel<D, C, P>); }
};

const void* kernel_for(Pass pass, DType dtype, bool contiguous, CountMode mode) {
  KernelPointer kp;
  return dispatch(kp, pass, dtype, contiguous, mode);
}

// Raises a kernel's dynamic shared memory limit to the device's opt-in maximum, once per device
// and kernel, before any launch of it: the attribute never changes afterwards, so launches from
// concurrent threads never see it half set.
cudaError_t allow_max_smem(const void* fn) {
  static std::mutex mu;
  static std::set<std::pair<int, const void*>> done;
  int device = 0;
  cudaError_t e = cudaGetDevice(&device);
  if (e != cudaSuccess) return e;
  std::lock_guard<std::mutex> lock(mu);
  if (done.count({device, fn})) return cudaSuccess;
  int optin = 0;
  e = cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, device);
  if (e != cudaSuccess) return e;
  cudaFuncAttributes attr{};
  e = cudaFuncGetAttributes(&attr, fn);
  if (e != cudaSuccess) return e;
  e = cudaFuncSetAttribute(fn, cudaFuncAttributeMaxDynamicSharedMemorySize,
                           optin - static_cast<int>(attr.sharedSizeBytes));
  if (e == cudaSuccess) done.insert({device, fn});
  return e;
}

}  // namespace

int cuda_launch_pass(Pass pass, DType dtype, bool contiguous, CountMode mode, const LaunchArgs& args, int grid,
                     int smem, void* stream) {
  const void* fn = kernel_for(pass, dtype, contiguous, mode);
  if (grid <= 0) return 0;
  cudaError_t e = allow_max_smem(fn);
  if (e != cudaSuccess) return static_cast<int>(e);
  LaunchArgs a = args;
  int bytes = smem;
  void* params[] = {&a, &bytes};
  // cudaLaunchKernel reports this launch's own error (never an older one).
  return static_cast<int>(cudaLaunchKernel(fn, dim3(grid), dim3(threads_per_block(pass)), params,
                                           static_cast<std::size_t>(smem), static_cast<cudaStream_t>(stream)));
}

int cuda_blocks_per_sm(Pass pass, DType dtype, bool contiguous, CountMode mode, int smem, int* blocks) {
  const void* fn = kernel_for(pass, dtype, contiguous, mode);
  cudaError_t e = allow_max_smem(fn);
  if (e != cudaSuccess) return static_cast<int>(e);
  return static_cast<int>(cudaOccupancyMaxActiveBlocksPerMultiprocessor(blocks, fn, threads_per_block(pass),
                                                                       static_cast<std::size_t>(smem)));
}

int cuda_launch_plan(const DevTensor* tensors, int num_tensors, const DevStats* stats, DevPlan* plans, char* thresholds,
                     std::uint64_t total, void* stream) {
  if (total == 0 || num_tensors == 0) return 0;
  const std::uint64_t want = (total + kThreadsPerBlock - 1) / kThreadsPerBlock;
  const unsigned grid = static_cast<unsigned>(want < 65535 ? want : 65535);
  unsigned long long t = total;
  void* params[] = {&tensors, &num_tensors, &stats, &plans, &thresholds, &t};
  return static_cast<int>(cudaLaunchKernel(reinterpret_cast<const void*>(&plan_kernel), dim3(grid),
                                           dim3(kThreadsPerBlock), params, 0, static_cast<cudaStream_t>(stream)));
}

const char* cuda_compiled_architectures() { return HISTGPU_CUDA_ARCH_LIST; }

}  // namespace histgpu::cuda
