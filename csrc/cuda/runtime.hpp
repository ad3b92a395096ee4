// What the host side of the GPU engine needs from a device, as an interface: the CUDA runtime
// (runtime_cuda.cpp) and the emulated device of the host (runtime_emulated.cpp) implement it,
// so that one Batch (batch.cpp) -- workspace layout, launch groups, grids, shared-memory
// sizing, stream ordering, result assembly -- serves the real GPU and the emulator alike.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

#include "core/dtypes.hpp"
#include "cuda/device_types.hpp"
#include "cuda/policy.hpp"

namespace histgpu::cuda {

using Stream = void*;  // a cudaStream_t (0: the legacy default stream)
using Event = void*;

struct DeviceProps {
  int multiprocessors = 1;
  int smem_per_block_optin = 48 * 1024;  // dynamic + static shared memory one block may use
  int smem_per_multiprocessor = 100 * 1024;
  int threads_per_multiprocessor = 2048;
  bool stream_ordered_allocation = false;
  std::uint64_t memory_limit = 0;  // emulator only: device memory it may hand out (0: any)
};

class Runtime {
 public:
  virtual ~Runtime() = default;
  virtual std::string name() const = 0;
  virtual DeviceProps props(int device) = 0;
  virtual int current_device() = 0;
  virtual void set_device(int device) = 0;
  // The device holding `ptr`, or -1 for host or unknown memory.
  virtual int pointer_device(const void* ptr) = 0;

  virtual void* device_alloc(std::size_t bytes, Stream s) = 0;
  virtual void device_free(void* p, Stream s) = 0;  // stream-ordered where the device can
  virtual void* pinned_alloc(std::size_t bytes) = 0;
  virtual void copy_to_device(void* dst, const void* src, std::size_t bytes, Stream s) = 0;
  virtual void copy_to_host(void* dst, const void* src, std::size_t bytes, Stream s) = 0;
  virtual void fill_zero(void* dst, std::size_t bytes, Stream s) = 0;

  virtual Event record(Stream s) = 0;  // a new event, recorded on s
  virtual void wait(Stream s, Event e) = 0;  // work later enqueued on s waits for e
  virtual bool query(Event e) = 0;  // complete?
  virtual void synchronize(Event e) = 0;
  virtual void destroy(Event e) = 0;
  // fn(arg) on a host thread once everything enqueued on s so far has completed (it must not
  // call the runtime).
  virtual void when_done(Stream s, void (*fn)(void*), void* arg) = 0;

  // Kernels (the dispatch of kernels.cu / kernels_host.cpp).
  virtual void launch_pass(Pass pass, DType dtype, bool contiguous, CountMode mode, const LaunchArgs& args,
                           int grid, int smem, Stream s) = 0;
  // Blocks of that kernel one multiprocessor holds with `smem` bytes of dynamic shared memory.
  virtual int blocks_per_sm(Pass pass, DType dtype, bool contiguous, CountMode mode, int smem) = 0;
  virtual void launch_plan(const DevTensor* tensors, int num_tensors, const DevStats* stats, DevPlan* plans,
                           char* thresholds, std::uint64_t total, Stream s) = 0;

  // Two stream handles name one stream (0 and cudaStreamLegacy are the legacy default).
  static bool same_stream(Stream a, Stream b) {
    const auto ua = reinterpret_cast<std::uintptr_t>(a), ub = reinterpret_cast<std::uintptr_t>(b);
    return ua == ub || (ua <= 1 && ub <= 1);
  }
};

}  // namespace histgpu::cuda
