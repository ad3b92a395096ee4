// The CUDA engine: core's Engine interface on GPU memory, plus batches of v2 histograms that
// run with a fixed number of launches and complete asynchronously on the producer's stream.
//
// Streams travel as void* (a cudaStream_t; 0 is the legacy default stream, 1 and 2 the
// cudaStreamLegacy / cudaStreamPerThread handles of the CUDA Array Interface).
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/histogram.hpp"

namespace histgpu::cuda {

// Never throws: false without a driver, without a device, or on any CUDA error.
bool device_available();
int device_count();
// Why device_available() is false (empty when it is true).
std::string unavailable_reason();

struct DeviceDescription {
  int id = 0;
  std::string name;
  int major = 0, minor = 0;
  int multiprocessors = 0;
  std::uint64_t memory = 0;
};
std::vector<DeviceDescription> describe_devices();
int runtime_version();
int driver_version();

// The device that holds `ptr`, or -1 for host or unknown memory.
int pointer_device(std::uintptr_t ptr);

class CudaEngine final : public Engine {
 public:
  // device < 0: the device of each view's memory.
  CudaEngine(void* stream, int device) : stream_(stream), device_(device) {}
  RangeStats range(const StridedView& view) override;
  std::vector<std::uint64_t> count_v2(const StridedView& view, const V2Plan& plan,
                                      bool has_nonfinite, RangeStats* observed = nullptr) override;
  V1Raw v1(const StridedView& view) override;
  std::vector<V2Result> v2_many(const std::vector<BatchItem>& items) override;

 private:
  void* stream_;
  int device_;
};

class Batch;

// v2 histograms of many tensors, enqueued at construction on `stream` (range pass, device
// planner, count pass and one copy of the O(sum k) results into pinned memory, then an event):
// a handful of launches whatever the number of tensors, and no host synchronisation.
class PendingV2 {
 public:
  PendingV2(std::vector<BatchItem> items, void* stream, int device);
  ~PendingV2();
  PendingV2(const PendingV2&) = delete;
  PendingV2& operator=(const PendingV2&) = delete;

  bool done();   // the results have reached host memory
  void wait();   // blocks until done (the calling thread only)
  // Waits, then assembles each histogram with core's driver (same special cases, edges and
  // multiplicity as every engine), checking the device's thresholds against core's plan.
  std::vector<V2Result> results();
  std::size_t size() const { return items_.size(); }

 private:
  std::vector<BatchItem> items_;
  std::unique_ptr<Batch> batch_;
  int device_;
};

// Resolves device < 0 to the device of `ptr` (or the current device).
int resolve_device(int device, const void* ptr);

}  // namespace histgpu::cuda
