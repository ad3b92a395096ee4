// core's Engine on a GPU -- the real one (CudaEngine) or the host's emulation of one
// (EmulatedCudaEngine) -- plus batches of v2 histograms that run with a fixed number of
// launches and complete asynchronously (PendingV2).
//
// Streams travel as void* (a cudaStream_t; 0 is the legacy default stream, 1 and 2 the
// cudaStreamLegacy / cudaStreamPerThread handles of the CUDA Array Interface).
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/histogram.hpp"
#include "cuda/batch.hpp"
#include "cuda/runtime.hpp"

namespace histgpu::cuda {

// A batch of v2 histograms enqueued at construction on `stream` (range pass, device planner,
// count pass and one copy of the O(sum k) results into pinned memory, then an event): a handful
// of launches whatever the number of tensors, and no host synchronisation.
class PendingV2 {
 public:
  PendingV2(std::shared_ptr<DeviceState> state, std::vector<BatchItem> items, Stream stream, int device,
            const std::vector<Stream>& producers, bool verify_plan);
  // Frees the batch on its own device (stream 0 names the current device's legacy stream).
  ~PendingV2();
  bool done();  // the results have reached host memory
  void wait();  // blocks until done (the calling thread only)
  // Waits, then assembles each histogram with core's driver (same special cases, edges and
  // multiplicity as every engine).
  std::vector<V2Result> results();
  std::size_t size() const { return items_.size(); }

 private:
  std::shared_ptr<DeviceState> state_;
  std::vector<BatchItem> items_;
  std::unique_ptr<Batch> batch_;
  int device_ = 0;
  bool verify_plan_ = false;
};

class GpuEngine : public Engine {
 public:
  // device < 0: the device that holds the views (or the current one).
  GpuEngine(std::shared_ptr<DeviceState> state, Stream stream, int device)
      : state_(std::move(state)), stream_(stream), device_(device) {}
  RangeStats range(const StridedView& view) override;
  std::vector<std::uint64_t> count_v2(const StridedView& view, const V2Plan& plan, bool has_nonfinite,
                                      RangeStats* observed = nullptr) override;
  V1Raw v1(const StridedView& view) override;
  std::vector<V2Result> v2_many(const std::vector<BatchItem>& items) override;
  // v2 batches with one producer stream per view (the batch orders itself after each).
  std::unique_ptr<PendingV2> enqueue_v2(std::vector<BatchItem> items, const std::vector<Stream>& producers);
  // Compare the device planner's thresholds with core's plan when results are assembled
  // (on by default for at most kVerifyPlanUpTo buckets, where host planning costs little).
  void set_verify_plan(bool on) { verify_all_ = on; }
  static constexpr std::int64_t kVerifyPlanUpTo = 4096;

 protected:
  int resolve_device(const std::vector<BatchItem>& items);
  std::shared_ptr<DeviceState> state_;
  Stream stream_;
  int device_;
  bool verify_all_ = false;
};

// The CUDA engine on a real GPU.
class CudaEngine final : public GpuEngine {
 public:
  CudaEngine(Stream stream, int device);
};

// The CUDA kernels run on the host by the emulator (csrc/cuda/emulator): host memory stands
// for device memory, every operation completes before it returns, and the device's properties
// are what the caller says (by default a small GPU with the smallest opt-in shared memory
// histgpu supports, sm_86's 99 KiB).
class EmulatedCudaEngine final : public GpuEngine {
 public:
  explicit EmulatedCudaEngine(const DeviceProps& props = default_props());
  static DeviceProps default_props();
  // Runtime calls made so far, one line each ("record s=1 e=3", "wait s=2 e=3", ...).
  std::vector<std::string> trace() const;
  std::size_t pinned_bytes() const { return state_->pinned().held(); }
};

// The state of the process's CUDA runtime (one per process, never destroyed).
std::shared_ptr<DeviceState> cuda_state();

}  // namespace histgpu::cuda
