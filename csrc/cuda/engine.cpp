#include "cuda/engine.hpp"

#include <cstring>
#include <stdexcept>

namespace histgpu::cuda {

namespace {

// Makes `device` current for the lifetime of the guard.
class DeviceGuard {
 public:
  DeviceGuard(Runtime& rt, int device) : rt_(rt) {
    prev_ = rt.current_device();
    if (device != prev_) rt.set_device(device);
    else prev_ = -1;
  }
  ~DeviceGuard() {
    if (prev_ >= 0) {
      try {
        rt_.set_device(prev_);
      } catch (...) {
      }
    }
  }

 private:
  Runtime& rt_;
  int prev_ = -1;
};

GlobalRange own_range(const RangeStats& s, std::uint64_t multiplicity) {
  return GlobalRange{s.min, s.max, repeat_stats(s, multiplicity).num};
}

}  // namespace

// ---- asynchronous batches of v2 histograms ------------------------------------------------------

PendingV2::PendingV2(std::shared_ptr<DeviceState> state, std::vector<BatchItem> items, Stream stream, int device,
                     const std::vector<Stream>& producers, bool verify_plan)
    : state_(std::move(state)), items_(std::move(items)), device_(device), verify_plan_(verify_plan) {
  for (auto& it : items_) it.k = checked_bucket_count(it.k);
  if (items_.empty()) return;
  DeviceGuard guard(state_->runtime(), device_);
  batch_ = std::make_unique<Batch>(*state_, items_, Batch::Mode::V2, stream, device_, producers);
  batch_->upload();
  batch_->launch(Pass::Range);
  batch_->plan_on_device();
  batch_->launch(Pass::Count);
  batch_->download();
}

PendingV2::~PendingV2() {
  if (!batch_) return;
  try {
    DeviceGuard guard(state_->runtime(), device_);
    batch_.reset();
  } catch (...) {  // never throw from a destructor; the batch is released all the same
    batch_.reset();
  }
}

bool PendingV2::done() { return !batch_ || batch_->done(); }

void PendingV2::wait() {
  if (batch_) batch_->wait();
}

std::vector<V2Result> PendingV2::results() {
  wait();
  std::vector<V2Result> out;
  out.reserve(items_.size());
  for (std::size_t i = 0; i < items_.size(); ++i) {
    const BatchItem& it = items_[i];
    const int ii = static_cast<int>(i);
    const RangeStats s = batch_->stats(ii);
    const GlobalRange range = own_range(s, it.view.multiplicity);
    std::vector<std::uint64_t> counts;
    if (v2_needs_counts(it.k, s, range)) {
      counts = batch_->counts(ii, static_cast<std::size_t>(it.k));
      if (verify_plan_ || it.k <= GpuEngine::kVerifyPlanUpTo) {
        // core's plan of the same range must have the very thresholds the device planned
        const V2Plan plan = V2Plan::make(it.view.dtype, range.min, range.max, it.k);
        const bool same =
            plan.kernel == KernelType::F32
                ? std::memcmp(plan.thresholds_f32.data(), batch_->thresholds(ii), plan.thresholds_f32.size() * 4) == 0
                : std::memcmp(plan.thresholds_f64.data(), batch_->thresholds(ii), plan.thresholds_f64.size() * 8) == 0;
        if (!same)
          throw std::logic_error(
              "histgpu internal error: the device planner's thresholds differ from core's plan; please report");
      }
    }
    out.push_back(assemble_v2(it.view, it.k, s, range, std::move(counts)));
  }
  return out;
}

// ---- the engine -----------------------------------------------------------------------------------

int GpuEngine::resolve_device(const std::vector<BatchItem>& items) {
  if (device_ >= 0) return device_;
  Runtime& rt = state_->runtime();
  for (const BatchItem& it : items)
    if (it.view.size()) {
      const int d = rt.pointer_device(it.view.base);
      if (d >= 0) return d;
      break;
    }
  return rt.current_device();
}

RangeStats GpuEngine::range(const StridedView& view) {
  if (view.size() == 0) return RangeStats{};
  const std::vector<BatchItem> items{BatchItem{view, 0}};
  const int dev = resolve_device(items);
  DeviceGuard guard(state_->runtime(), dev);
  Batch b(*state_, items, Batch::Mode::V2, stream_, dev, {});
  b.upload();
  b.launch(Pass::Range);
  b.download();
  b.wait();
  return b.stats(0);
}

std::vector<std::uint64_t> GpuEngine::count_v2(const StridedView& view, const V2Plan& plan, bool,
                                               RangeStats* observed) {
  // A GPU reads twice as fast as it is asked to: the range for the check comes from its own pass.
  if (observed) *observed = range(view);
  const std::int64_t k = plan.spec.k;
  if (view.size() == 0 || k <= 0) return std::vector<std::uint64_t>(static_cast<std::size_t>(std::max<std::int64_t>(k, 0)), 0);
  const std::vector<BatchItem> items{BatchItem{view, k}};
  const int dev = resolve_device(items);
  DeviceGuard guard(state_->runtime(), dev);
  Batch b(*state_, items, Batch::Mode::V2, stream_, dev, {});
  b.set_host_plan(0, plan);
  b.upload();
  b.launch(Pass::Count);
  b.download();
  b.wait();
  return b.counts(0, static_cast<std::size_t>(k));
}

V1Raw GpuEngine::v1(const StridedView& view) {
  V1Raw raw;
  if (view.size() == 0) {
    raw.counts.assign(v1_default_limits().size(), 0);
    return raw;
  }
  const std::vector<BatchItem> items{BatchItem{view, 0}};
  const int dev = resolve_device(items);
  DeviceGuard guard(state_->runtime(), dev);
  Batch b(*state_, items, Batch::Mode::V1, stream_, dev, {});
  b.upload();
  b.launch(Pass::V1);
  b.download();
  b.wait();
  raw.counts = b.counts(0, v1_default_limits().size());
  raw.stats = b.stats(0);
  b.fold_sums(0, raw.sum, raw.sumsq);
  return raw;
}

std::unique_ptr<PendingV2> GpuEngine::enqueue_v2(std::vector<BatchItem> items, const std::vector<Stream>& producers) {
  const int dev = resolve_device(items);
  return std::make_unique<PendingV2>(state_, std::move(items), stream_, dev, producers, verify_all_);
}

std::vector<V2Result> GpuEngine::v2_many(const std::vector<BatchItem>& items) {
  return enqueue_v2(items, {})->results();
}

}  // namespace histgpu::cuda
