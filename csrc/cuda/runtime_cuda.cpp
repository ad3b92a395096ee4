// The CUDA runtime behind the Runtime interface, device queries, and the CUDA engine.
#include <cuda_runtime_api.h>

#include <mutex>
#include <stdexcept>
#include <string>

#include "cuda/device.hpp"
#include "cuda/engine.hpp"
#include "cuda/kernels_cuda.hpp"
#include "cuda/runtime.hpp"

namespace histgpu::cuda {

namespace {

void check(cudaError_t e, const char* what) {
  if (e != cudaSuccess) {
    cudaGetLastError();  // a non-sticky error must not be reported again by a later call
    throw std::runtime_error(std::string("histgpu CUDA: ") + what + ": " + cudaGetErrorName(e) + " (" +
                             cudaGetErrorString(e) + ")");
  }
}
void check(int e, const char* what) { check(static_cast<cudaError_t>(e), what); }

cudaStream_t as_stream(Stream s) { return static_cast<cudaStream_t>(s); }

class CudaRuntime final : public Runtime {
 public:
  std::string name() const override { return "cuda"; }

  DeviceProps props(int device) override {
    DeviceProps p;
    check(cudaDeviceGetAttribute(&p.multiprocessors, cudaDevAttrMultiProcessorCount, device), "multiprocessor count");
    check(cudaDeviceGetAttribute(&p.smem_per_block_optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, device),
          "shared memory per block");
    check(cudaDeviceGetAttribute(&p.smem_per_multiprocessor, cudaDevAttrMaxSharedMemoryPerMultiprocessor, device),
          "shared memory per multiprocessor");
    check(cudaDeviceGetAttribute(&p.threads_per_multiprocessor, cudaDevAttrMaxThreadsPerMultiProcessor, device),
          "threads per multiprocessor");
    int pools = 0;
    if (cudaDeviceGetAttribute(&pools, cudaDevAttrMemoryPoolsSupported, device) != cudaSuccess) cudaGetLastError();
    p.stream_ordered_allocation = pools != 0;
    return p;
  }
  int current_device() override {
    int d = 0;
    check(cudaGetDevice(&d), "cudaGetDevice");
    return d;
  }
  void set_device(int device) override { check(cudaSetDevice(device), "cudaSetDevice"); }
  int pointer_device(const void* ptr) override {
    return cuda::pointer_device(reinterpret_cast<std::uintptr_t>(ptr));
  }

  void* device_alloc(std::size_t bytes, Stream s) override {
    void* p = nullptr;
    if (pools()) check(cudaMallocAsync(&p, bytes, as_stream(s)), "cudaMallocAsync");
    else check(cudaMalloc(&p, bytes), "cudaMalloc");
    return p;
  }
  void device_free(void* p, Stream s) override {
    // stream-ordered: the memory returns to the pool after the work before it on s
    if (pools()) cudaFreeAsync(p, as_stream(s));
    else {
      cudaStreamSynchronize(as_stream(s));  // only without stream-ordered allocation (old drivers)
      cudaFree(p);
    }
  }
  void* pinned_alloc(std::size_t bytes) override {
    void* p = nullptr;
    check(cudaHostAlloc(&p, bytes, cudaHostAllocPortable), "cudaHostAlloc");
    return p;
  }
  void copy_to_device(void* dst, const void* src, std::size_t n, Stream s) override {
    check(cudaMemcpyAsync(dst, src, n, cudaMemcpyHostToDevice, as_stream(s)), "cudaMemcpyAsync");
  }
  void copy_to_host(void* dst, const void* src, std::size_t n, Stream s) override {
    check(cudaMemcpyAsync(dst, src, n, cudaMemcpyDeviceToHost, as_stream(s)), "cudaMemcpyAsync");
  }
  void fill_zero(void* dst, std::size_t n, Stream s) override {
    check(cudaMemsetAsync(dst, 0, n, as_stream(s)), "cudaMemsetAsync");
  }

  Event record(Stream s) override {
    cudaEvent_t e = nullptr;
    check(cudaEventCreateWithFlags(&e, cudaEventDisableTiming), "cudaEventCreate");
    const cudaError_t r = cudaEventRecord(e, as_stream(s));
    if (r != cudaSuccess) cudaEventDestroy(e);
    check(r, "cudaEventRecord");
    return e;
  }
  void wait(Stream s, Event e) override {
    check(cudaStreamWaitEvent(as_stream(s), static_cast<cudaEvent_t>(e), 0), "cudaStreamWaitEvent");
  }
  bool query(Event e) override {
    const cudaError_t r = cudaEventQuery(static_cast<cudaEvent_t>(e));
    if (r == cudaErrorNotReady) return false;  // not an error: nothing to clear
    check(r, "cudaEventQuery");
    return true;
  }
  void synchronize(Event e) override { check(cudaEventSynchronize(static_cast<cudaEvent_t>(e)), "waiting for the results"); }
  void destroy(Event e) override { cudaEventDestroy(static_cast<cudaEvent_t>(e)); }
  void when_done(Stream s, void (*fn)(void*), void* arg) override {
    check(cudaLaunchHostFunc(as_stream(s), fn, arg), "cudaLaunchHostFunc");
  }

  void launch_pass(Pass pass, DType dtype, bool contiguous, CountMode mode, const LaunchArgs& args, int grid,
                   int smem, Stream s) override {
    check(cuda_launch_pass(pass, dtype, contiguous, mode, args, grid, smem, s), "kernel launch");
  }
  int blocks_per_sm(Pass pass, DType dtype, bool contiguous, CountMode mode, int smem) override {
    int blocks = 0;
    check(cuda_blocks_per_sm(pass, dtype, contiguous, mode, smem, &blocks), "occupancy");
    return blocks;
  }
  void launch_plan(const DevTensor* tensors, int num_tensors, const DevStats* stats, DevPlan* plans, char* thresholds,
                   std::uint64_t total, Stream s) override {
    check(cuda_launch_plan(tensors, num_tensors, stats, plans, thresholds, total, s), "planner launch");
  }

 private:
  bool pools() {
    std::call_once(pools_once_, [&] {
      int pools = 0;
      if (cudaDeviceGetAttribute(&pools, cudaDevAttrMemoryPoolsSupported, current_device()) != cudaSuccess)
        cudaGetLastError();
      pools_ = pools != 0;
    });
    return pools_;
  }
  std::once_flag pools_once_;
  bool pools_ = false;
};

}  // namespace

std::shared_ptr<DeviceState> cuda_state() {
  // never destroyed: no CUDA calls from static destructors at exit
  static auto* state = new std::shared_ptr<DeviceState>(std::make_shared<DeviceState>(std::make_shared<CudaRuntime>()));
  return *state;
}

CudaEngine::CudaEngine(Stream stream, int device) : GpuEngine(cuda_state(), stream, device) {}

// ---- device queries -------------------------------------------------------------------------------

int device_count() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    cudaGetLastError();
    return 0;
  }
  return n;
}

bool device_available() { return device_count() > 0; }

std::string unavailable_reason() {
  int n = 0;
  const cudaError_t e = cudaGetDeviceCount(&n);
  cudaGetLastError();
  if (e != cudaSuccess) return std::string(cudaGetErrorName(e)) + ": " + cudaGetErrorString(e);
  if (n == 0) return "no CUDA device";
  return "";
}

std::vector<DeviceDescription> describe_devices() {
  std::vector<DeviceDescription> out;
  const int n = device_count();
  for (int d = 0; d < n; ++d) {
    cudaDeviceProp p;
    if (cudaGetDeviceProperties(&p, d) != cudaSuccess) {
      cudaGetLastError();
      continue;
    }
    DeviceDescription dd;
    dd.id = d;
    dd.name = p.name;
    dd.major = p.major;
    dd.minor = p.minor;
    dd.multiprocessors = p.multiProcessorCount;
    dd.memory = p.totalGlobalMem;
    out.push_back(dd);
  }
  return out;
}

int runtime_version() {
  int v = 0;
  cudaRuntimeGetVersion(&v);
  return v;
}

int driver_version() {
  int v = 0;
  if (cudaDriverGetVersion(&v) != cudaSuccess) cudaGetLastError();
  return v;
}

int pointer_device(std::uintptr_t ptr) {
  cudaPointerAttributes a;
  if (cudaPointerGetAttributes(&a, reinterpret_cast<const void*>(ptr)) != cudaSuccess) {
    cudaGetLastError();
    return -1;
  }
  if (a.type == cudaMemoryTypeDevice || a.type == cudaMemoryTypeManaged) return a.device;
  return -1;
}

std::string compiled_architectures() { return cuda_compiled_architectures(); }

DeviceBuffer::DeviceBuffer(const void* data, std::size_t bytes, int device) : device_(device) {
  int prev = 0;
  check(cudaGetDevice(&prev), "cudaGetDevice");
  check(cudaSetDevice(device), "cudaSetDevice");
  const cudaError_t e = cudaMalloc(&ptr_, bytes + 64);
  if (e == cudaSuccess && bytes) {
    const cudaError_t c = cudaMemcpy(ptr_, data, bytes, cudaMemcpyHostToDevice);
    if (c != cudaSuccess) {
      cudaFree(ptr_);
      ptr_ = nullptr;
      cudaSetDevice(prev);
      check(c, "cudaMemcpy");
    }
  }
  cudaSetDevice(prev);
  check(e, "cudaMalloc");
}

DeviceBuffer::~DeviceBuffer() {
  if (ptr_) cudaFree(ptr_);
}

}  // namespace histgpu::cuda
