// The emulated device: host memory stands for device memory, every call completes before it
// returns (streams are trivially ordered), kernels run in the emulator. It keeps a trace of the
// calls that order streams, so that tests can check what a batch asks of a real device.
#include <cstdlib>
#include <stdexcept>
#include <cstring>
#include <mutex>
#include <new>
#include <string>
#include <vector>

#include "cuda/batch_kernel.cuh"
#include "cuda/emulator/emulator.hpp"
#include "cuda/engine.hpp"
#include "cuda/kernels_host.hpp"
#include "cuda/runtime.hpp"

namespace histgpu::cuda {

namespace {

std::string handle(const void* p) { return std::to_string(reinterpret_cast<std::uintptr_t>(p)); }

class EmulatedRuntime final : public Runtime {
 public:
  explicit EmulatedRuntime(const DeviceProps& p) : props_(p) {}
  std::string name() const override { return "emulated"; }
  DeviceProps props(int) override { return props_; }
  int current_device() override { return 0; }
  void set_device(int device) override {
    if (device != 0) throw std::invalid_argument("histgpu emulator: there is one emulated device, device 0");
  }
  int pointer_device(const void*) override { return 0; }  // host memory is the device's

  // Device memory starts as garbage, between guard pages: a kernel reading past an allocation
  // raises instead of reading a neighbour's bytes.
  void* device_alloc(std::size_t bytes, Stream) override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (props_.memory_limit && in_use_ + bytes > props_.memory_limit)
        throw std::runtime_error("histgpu emulator: out of device memory (cudaErrorMemoryAllocation)");
      in_use_ += bytes;
    }
    void* p = simt::emu::guarded_alloc(bytes, 0xA5);
    std::lock_guard<std::mutex> lock(mu_);
    sizes_.emplace_back(p, bytes);
    return p;
  }
  void device_free(void* p, Stream) override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      for (auto it = sizes_.begin(); it != sizes_.end(); ++it)
        if (it->first == p) {
          in_use_ -= it->second;
          sizes_.erase(it);
          break;
        }
    }
    simt::emu::guarded_free(p);
  }
  void* pinned_alloc(std::size_t bytes) override {
    void* p = std::aligned_alloc(4096, (bytes + 4095) / 4096 * 4096);
    if (!p) throw std::bad_alloc();
    return p;
  }
  void copy_to_device(void* dst, const void* src, std::size_t n, Stream) override { std::memcpy(dst, src, n); }
  void copy_to_host(void* dst, const void* src, std::size_t n, Stream) override { std::memcpy(dst, src, n); }
  void fill_zero(void* dst, std::size_t n, Stream) override { std::memset(dst, 0, n); }

  Event record(Stream s) override {
    const auto e = reinterpret_cast<Event>(++events_);
    log("record s=" + handle(s) + " e=" + handle(e));
    return e;
  }
  void wait(Stream s, Event e) override { log("wait s=" + handle(s) + " e=" + handle(e)); }
  bool query(Event) override { return true; }
  void synchronize(Event e) override { log("synchronize e=" + handle(e)); }
  void destroy(Event) override {}
  void when_done(Stream s, void (*fn)(void*), void* arg) override {
    log("when_done s=" + handle(s));
    fn(arg);
  }

  void launch_pass(Pass pass, DType dtype, bool contiguous, CountMode mode, const LaunchArgs& args, int grid,
                   int smem, Stream s) override {
    log("launch pass=" + std::to_string(static_cast<int>(pass)) + " mode=" + std::to_string(static_cast<int>(mode)) +
        " grid=" + std::to_string(grid) + " smem=" + std::to_string(smem) + " s=" + handle(s));
    if (smem + static_cast<int>(sizeof(BlockShared)) > props_.smem_per_block_optin)
      throw std::runtime_error("histgpu emulator: a launch asks for more shared memory than the device offers");
    emulate_pass(pass, dtype, contiguous, mode, args, grid, smem);
  }
  int blocks_per_sm(Pass pass, DType, bool, CountMode, int smem) override {
    const int by_threads = props_.threads_per_multiprocessor / threads_per_block(pass);
    const int per_block = smem + static_cast<int>(sizeof(BlockShared)) + 1024;  // + the runtime's reserve
    const int by_smem = props_.smem_per_multiprocessor / per_block;
    return by_threads < by_smem ? by_threads : by_smem;
  }
  void launch_plan(const DevTensor* tensors, int num_tensors, const DevStats* stats, DevPlan* plans, char* thresholds,
                   std::uint64_t total, Stream s) override {
    log("launch plan total=" + std::to_string(total) + " s=" + handle(s));
    const std::uint64_t want = (total + kThreadsPerBlock - 1) / kThreadsPerBlock;
    emulate_plan(tensors, num_tensors, stats, plans, thresholds, total, static_cast<int>(want < 64 ? want : 64));
  }

  std::vector<std::string> trace() const {
    std::lock_guard<std::mutex> lock(mu_);
    return trace_;
  }

 private:
  void log(std::string line) {
    std::lock_guard<std::mutex> lock(mu_);
    trace_.push_back(std::move(line));
  }
  DeviceProps props_;
  std::uint64_t events_ = 0;
  std::uint64_t in_use_ = 0;
  std::vector<std::pair<void*, std::size_t>> sizes_;
  mutable std::mutex mu_;
  std::vector<std::string> trace_;
};

}  // namespace

DeviceProps EmulatedCudaEngine::default_props() {
  DeviceProps p;
  p.multiprocessors = 2;
  p.smem_per_block_optin = 99 * 1024;  // sm_86 / sm_89: the least any supported GPU offers
  p.smem_per_multiprocessor = 100 * 1024;
  p.threads_per_multiprocessor = 1536;
  p.stream_ordered_allocation = true;
  return p;
}

EmulatedCudaEngine::EmulatedCudaEngine(const DeviceProps& props)
    : GpuEngine(std::make_shared<DeviceState>(std::make_shared<EmulatedRuntime>(props)), nullptr, 0) {}

std::vector<std::string> EmulatedCudaEngine::trace() const {
  return static_cast<EmulatedRuntime&>(state_->runtime()).trace();
}

}  // namespace histgpu::cuda
