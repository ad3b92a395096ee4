// A batch of tensors on one device: the workspace, the launch groups, the launches, the stream
// ordering and the results, over any Runtime (the CUDA runtime or the emulator).
//
// One Batch owns one device workspace and a pinned host mirror with the same layout:
//   [tensors | stats | plans | thresholds | counts | bins]
// The host fills [tensors .. thresholds] and uploads it with one copy; the kernels write
// [stats .. bins]; one copy brings that back into the mirror, and an event marks its arrival.
// Nothing here synchronises the device: waiting is on the batch's own event only, and a batch
// dropped before its results arrive returns its pinned memory once the copy has landed.
#pragma once
#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

#include "core/exact_sum.hpp"
#include "core/histogram.hpp"
#include "cuda/device_types.hpp"
#include "cuda/policy.hpp"
#include "cuda/runtime.hpp"

namespace histgpu::cuda {

// Pinned host buffers of one runtime, reused: freeing pinned memory synchronises the whole
// device, so buffers are never freed while the process runs (trim() does, on request).
class PinnedPool {
 public:
  explicit PinnedPool(Runtime& rt) : rt_(rt) {}
  struct Buffer {
    PinnedPool* pool = nullptr;
    char* data = nullptr;
    std::size_t size = 0;
  };
  Buffer acquire(std::size_t bytes);
  // Returns a buffer; callable from a runtime callback (it makes no runtime call).
  void give_back(char* data, std::size_t size);
  std::size_t held() const;

 private:
  Runtime& rt_;
  mutable std::mutex mu_;
  std::vector<Buffer> free_;
};

// The v1 tables of one device, uploaded once.
struct V1Tables {
  const V1Guess* guess = nullptr;
  const double* thresholds64 = nullptr;
  int nb = 0;
};

// What a runtime keeps per device for the batches: its properties, the v1 tables and the
// pinned pool. Owned by the engine of that runtime.
class DeviceState {
 public:
  explicit DeviceState(std::shared_ptr<Runtime> rt) : owner_(std::move(rt)), rt_(*owner_), pinned_(rt_) {}
  Runtime& runtime() { return rt_; }
  PinnedPool& pinned() { return pinned_; }
  const DeviceProps& props(int device);
  const V1Tables& v1_tables(int device);

 private:
  std::shared_ptr<Runtime> owner_;
  Runtime& rt_;
  PinnedPool pinned_;
  std::mutex mu_;
  std::vector<std::pair<int, DeviceProps>> props_;
  std::vector<std::pair<int, V1Tables>> v1_;
};

class Batch {
 public:
  enum class Mode { V2, V1 };

  // Views must live on `device` (checked). `stream`: the batch's stream; `producers`: the
  // streams the views were produced on (the batch waits for them, and they for its reads).
  Batch(DeviceState& state, const std::vector<BatchItem>& items, Mode mode, Stream stream, int device,
        const std::vector<Stream>& producers);
  ~Batch();
  Batch(const Batch&) = delete;
  Batch& operator=(const Batch&) = delete;

  void set_host_plan(int i, const V2Plan& plan);  // count pass with core's plan of tensor i
  void upload();
  void launch(Pass pass);
  void plan_on_device();
  void download();  // results back, completion event, workspace freed (stream-ordered)
  bool done();
  void wait();

  RangeStats stats(int i) const;
  std::vector<std::uint64_t> counts(int i, std::size_t n) const;
  const char* thresholds(int i) const;
  // Tensor i's exact-sum bins folded into core's fixed-point sums.
  void fold_sums(int i, BigFixed& sum, BigFixed& sumsq) const;

 private:
  struct Group {
    int first = 0, count = 0;
    DType dtype = DType::Float32;
    bool contiguous = true;
    CountMode mode = CountMode::LaneCounters;
    std::uint64_t chunks = 0;
    std::uint64_t count_smem = 0;
  };
  void free_device();
  int smem_limit() const;

  DeviceState& state_;
  Runtime& rt_;
  Mode mode_;
  Stream stream_;
  int device_;
  std::vector<Stream> producers_;
  std::vector<DType> dtypes_;
  std::vector<std::uint64_t> sizes_;
  std::vector<int> order_, pos_;
  std::vector<std::uint64_t> thr_rel_, counts_rel_, bins_rel_;
  std::vector<Group> groups_;
  std::uint64_t tensors_off_ = 0, stats_off_ = 0, plans_off_ = 0, thr_off_ = 0, counts_off_ = 0, bins_off_ = 0,
                total_ = 0, total_k_ = 0;
  PinnedPool::Buffer host_;
  char* dev_ = nullptr;
  Event event_ = nullptr;
  bool uploaded_ = false;
};

}  // namespace histgpu::cuda
