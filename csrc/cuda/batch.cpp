#include "cuda/batch.hpp"

#include <algorithm>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <string>

#include "core/ordered.hpp"
#include "core/thresholds.hpp"
#include "cuda/passes/v1.cuh"

namespace histgpu::cuda {

namespace {

std::uint64_t align_up(std::uint64_t v, std::uint64_t a) { return (v + a - 1) / a * a; }

bool is_f64(DType t) { return kernel_type(t) == KernelType::F64; }

// Static shared memory of a batch block (BlockShared) plus what the runtime reserves per block.
constexpr int kStaticSmem = static_cast<int>(sizeof(DevTensor)) + 1024;

void fill_tensor(DevTensor& t, const StridedView& v) {
  std::memset(&t, 0, sizeof t);
  t.base = v.base;
  t.dtype = static_cast<std::int32_t>(v.dtype);
  t.itemsize = static_cast<std::int32_t>(dtype_size(v.dtype));
  t.n = v.size();
  t.ndim = v.ndim > 0 ? v.ndim : 1;
  bool aligned = reinterpret_cast<std::uintptr_t>(v.base) % t.itemsize == 0;
  for (int d = 0; d < v.ndim; ++d) {
    t.shape[d] = v.shape[d];
    t.strides[d] = v.strides[d];
    if (v.shape[d] > 1 && v.strides[d] % t.itemsize != 0) aligned = false;
  }
  if (v.ndim == 0) {
    t.shape[0] = 1;
    t.strides[0] = t.itemsize;
  }
  t.aligned = aligned ? 1 : 0;
  // Contiguous: one dimension of unit stride (the Python layer merges and sorts dimensions).
  int real = 0, last = -1;
  for (int d = 0; d < t.ndim; ++d)
    if (t.shape[d] != 1) ++real, last = d;
  const bool unit = real == 0 || (real == 1 && t.strides[last] == t.itemsize);
  if (aligned && unit) {
    t.contiguous = 1;
    t.ndim = 1;
    t.shape[0] = static_cast<std::int64_t>(t.n);
    t.strides[0] = t.itemsize;
  }
}

template <class K> RangeStats stats_from(const DevStats& d, std::uint64_t n) {
  using Key = typename FloatBits<K>::UInt;
  RangeStats s;
  s.nan = d.nan;
  s.posinf = d.posinf;
  s.neginf = d.neginf;
  s.num = n - (d.nan + d.posinf + d.neginf);
  if (s.num) {
    s.min = static_cast<double>(from_ordered_key<K>(static_cast<Key>(d.kmin)));
    s.max = static_cast<double>(from_ordered_key<K>(static_cast<Key>(d.kmax)));
  }
  return s;
}

struct DeferredRelease {
  PinnedPool* pool;
  char* data;
  std::size_t size;
};

void release_when_done(void* arg) {
  auto* d = static_cast<DeferredRelease*>(arg);
  d->pool->give_back(d->data, d->size);
  delete d;
}

}  // namespace

// ---- pinned memory ------------------------------------------------------------------------------

PinnedPool::Buffer PinnedPool::acquire(std::size_t bytes) {
  bytes = std::max<std::size_t>(bytes, 4096);
  {
    std::lock_guard<std::mutex> lock(mu_);
    // the smallest free buffer that fits and wastes at most 3/4 of itself
    auto best = free_.end();
    for (auto it = free_.begin(); it != free_.end(); ++it)
      if (it->size >= bytes && it->size <= 4 * bytes && (best == free_.end() || it->size < best->size)) best = it;
    if (best != free_.end()) {
      Buffer b = *best;
      free_.erase(best);
      return b;
    }
  }
  std::size_t size = 4096;
  while (size < bytes) size *= 2;
  Buffer b;
  b.pool = this;
  b.data = static_cast<char*>(rt_.pinned_alloc(size));
  b.size = size;
  return b;
}

void PinnedPool::give_back(char* data, std::size_t size) {
  std::lock_guard<std::mutex> lock(mu_);
  free_.push_back(Buffer{this, data, size});
}

std::size_t PinnedPool::held() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::size_t n = 0;
  for (const Buffer& b : free_) n += b.size;
  return n;
}

// ---- per-device state ---------------------------------------------------------------------------

const DeviceProps& DeviceState::props(int device) {
  std::lock_guard<std::mutex> lock(mu_);
  for (auto& p : props_)
    if (p.first == device) return p.second;
  props_.emplace_back(device, rt_.props(device));
  return props_.back().second;
}

const V1Tables& DeviceState::v1_tables(int device) {
  std::lock_guard<std::mutex> lock(mu_);
  for (auto& t : v1_)
    if (t.first == device) return t.second;
  const std::vector<float> t32 = v1_thresholds<float>();
  std::vector<double> t64 = v1_thresholds<double>();
  t64.push_back(std::numeric_limits<double>::infinity());  // T[nb + 1]: the float64 walk stays inside
  const auto& g16 = v1_guess_table<float>();
  std::vector<V1Guess> guess(kV1GuessEntries);
  for (std::size_t p = 0; p < guess.size(); ++p) {
    const int g = g16[p];
    guess[p] = V1Guess{t32[static_cast<std::size_t>(g) + 1], g};
  }
  V1Tables tables;
  tables.nb = static_cast<int>(t32.size()) - 1;
  const std::size_t gbytes = guess.size() * sizeof(V1Guess), tbytes = t64.size() * sizeof(double);
  // Uploaded through a pinned buffer and waited for once: synchronous on the null stream.
  auto* dev = static_cast<char*>(rt_.device_alloc(gbytes + tbytes, nullptr));
  rt_.copy_to_device(dev, guess.data(), gbytes, nullptr);
  rt_.copy_to_device(dev + gbytes, t64.data(), tbytes, nullptr);
  Event e = rt_.record(nullptr);
  rt_.synchronize(e);
  rt_.destroy(e);
  tables.guess = reinterpret_cast<const V1Guess*>(dev);
  tables.thresholds64 = reinterpret_cast<const double*>(dev + gbytes);
  v1_.emplace_back(device, tables);  // lives as long as the engine's runtime
  return v1_.back().second;
}

// ---- batches --------------------------------------------------------------------------------------

int Batch::smem_limit() const { return state_.props(device_).smem_per_block_optin - kStaticSmem; }

Batch::Batch(DeviceState& state, const std::vector<BatchItem>& items, Mode mode, Stream stream, int device,
             const std::vector<Stream>& producers)
    : state_(state), rt_(state.runtime()), mode_(mode), stream_(stream), device_(device) {
  for (Stream p : producers)
    if (!Runtime::same_stream(p, stream_) &&
        std::none_of(producers_.begin(), producers_.end(), [&](Stream q) { return Runtime::same_stream(p, q); }))
      producers_.push_back(p);
  const int n = static_cast<int>(items.size());
  std::vector<DevTensor> tmp(n);
  for (int i = 0; i < n; ++i) {
    const StridedView& v = items[i].view;
    if (v.size()) {
      const int d = rt_.pointer_device(v.base);
      if (d != device_)
        throw std::invalid_argument(
            d < 0 ? "histgpu CUDA: a view does not point into device memory"
                  : "histgpu CUDA: one batch must live on one GPU (a view lives on device " + std::to_string(d) +
                        ", the batch on device " + std::to_string(device_) + "); enqueue one batch per device");
    }
    fill_tensor(tmp[i], v);
    dtypes_.push_back(v.dtype);
    sizes_.push_back(v.size());
  }
  const std::uint64_t cap = std::min<std::uint64_t>(kCountSmemCap, static_cast<std::uint64_t>(std::max(smem_limit(), 0)));
  std::vector<CountMode> modes(n, CountMode::LaneCounters);
  if (mode == Mode::V2)
    for (int i = 0; i < n; ++i)
      modes[i] = count_mode(std::max<std::int64_t>(items[i].k, 0), is_f64(items[i].view.dtype) ? 8 : 4, cap);
  // Launch groups: same dtype, layout and count mode, in a stable order.
  order_.resize(n);
  for (int i = 0; i < n; ++i) order_[i] = i;
  auto key = [&](int i) { return std::make_tuple(tmp[i].dtype, tmp[i].contiguous, static_cast<int>(modes[i])); };
  std::stable_sort(order_.begin(), order_.end(), [&](int a, int b) { return key(a) < key(b); });
  pos_.resize(n);
  for (int p = 0; p < n; ++p) pos_[order_[p]] = p;

  // Workspace layout.
  const V1Tables* v1 = mode == Mode::V1 ? &state_.v1_tables(device_) : nullptr;
  stats_off_ = align_up(sizeof(DevTensor) * n, 256);
  plans_off_ = align_up(stats_off_ + sizeof(DevStats) * n, 256);
  thr_off_ = align_up(plans_off_ + sizeof(DevPlan) * n, 256);
  std::uint64_t thr_bytes = 0, counts = 0, bins_words = 0;
  thr_rel_.assign(n, 0);
  counts_rel_.assign(n, 0);
  bins_rel_.assign(n, 0);
  for (int p = 0; p < n; ++p) {
    const int i = order_[p];
    DevTensor& t = tmp[i];
    const bool f64 = is_f64(items[i].view.dtype);
    if (mode == Mode::V2) {
      t.k = std::max<std::int64_t>(items[i].k, 0);
      thr_rel_[p] = t.thr_off = thr_bytes;
      if (t.k > 0) thr_bytes += table_bytes(t.k, f64 ? 8 : 4);
      counts_rel_[p] = t.counts_off = counts;
      counts += static_cast<std::uint64_t>(t.k);
    } else {
      counts_rel_[p] = t.counts_off = counts;
      counts += static_cast<std::uint64_t>(v1->nb);
      bins_rel_[p] = t.bins_off = bins_words;
      bins_words += static_cast<std::uint64_t>(f64 ? kExpBins<double> : kExpBins<float>) * kBinWords;
    }
  }
  counts_off_ = align_up(thr_off_ + thr_bytes, 256);
  bins_off_ = align_up(counts_off_ + counts * 8, 256);
  total_ = std::max<std::uint64_t>(align_up(bins_off_ + bins_words * 8, 256), 256);
  total_k_ = counts;

  // Groups and chunk numbering.
  for (int p = 0; p < n;) {
    Group g;
    g.first = p;
    const int i0 = order_[p];
    g.dtype = static_cast<DType>(tmp[i0].dtype);
    g.contiguous = tmp[i0].contiguous != 0;
    g.mode = modes[i0];
    std::uint64_t chunks = 0;
    while (p < n && key(order_[p]) == key(i0)) {
      DevTensor& t = tmp[order_[p]];
      t.chunk_begin = chunks;
      chunks += (t.n + kChunk - 1) / kChunk;
      t.chunk_end = chunks;
      if (mode == Mode::V2 && t.k > 0)
        g.count_smem = std::max(g.count_smem, count_smem_bytes(g.mode, t.k, is_f64(g.dtype) ? 8 : 4));
      ++p;
    }
    g.count = p - g.first;
    g.chunks = chunks;
    groups_.push_back(g);
  }

  host_ = state_.pinned().acquire(total_);  // returned by the destructor, also if a step below throws
  try {
    std::memset(host_.data, 0, total_);
    for (int q = 0; q < n; ++q) {
      std::memcpy(host_.data + tensors_off_ + sizeof(DevTensor) * q, &tmp[order_[q]], sizeof(DevTensor));
      const DevStats init{~0ull, 0, 0, 0, 0, 0};
      std::memcpy(host_.data + stats_off_ + sizeof(DevStats) * q, &init, sizeof init);
    }
    dev_ = static_cast<char*>(rt_.device_alloc(total_, stream_));
  } catch (...) {
    state_.pinned().give_back(host_.data, host_.size);
    host_ = PinnedPool::Buffer{};
    throw;
  }
}

Batch::~Batch() {
  if (dev_) free_device();
  if (!host_.data) return;
  if (uploaded_) {
    // The copies may still read or write host_: it returns to the pool once they are done,
    // without this thread waiting.
    rt_.when_done(stream_, &release_when_done, new DeferredRelease{&state_.pinned(), host_.data, host_.size});
  } else {
    state_.pinned().give_back(host_.data, host_.size);
  }
  if (event_) rt_.destroy(event_);
}

void Batch::free_device() {
  rt_.device_free(dev_, stream_);
  dev_ = nullptr;
}

void Batch::set_host_plan(int i, const V2Plan& plan) {
  const int p = pos_[i];
  const DevPlan dp{plan.guess_lo, plan.guess_scale, 1, 0};
  std::memcpy(host_.data + plans_off_ + sizeof(DevPlan) * p, &dp, sizeof dp);
  char* dst = host_.data + thr_off_ + thr_rel_[p];
  if (plan.kernel == KernelType::F32)
    std::memcpy(dst, plan.thresholds_f32.data(), plan.thresholds_f32.size() * sizeof(float));
  else
    std::memcpy(dst, plan.thresholds_f64.data(), plan.thresholds_f64.size() * sizeof(double));
}

void Batch::upload() {
  // The batch reads what the producers' streams wrote up to now.
  for (Stream p : producers_) {
    Event e = rt_.record(p);
    rt_.wait(stream_, e);
    rt_.destroy(e);
  }
  uploaded_ = true;
  rt_.copy_to_device(dev_, host_.data, counts_off_, stream_);
  if (total_ > counts_off_) rt_.fill_zero(dev_ + counts_off_, total_ - counts_off_, stream_);
}

void Batch::launch(Pass pass) {
  const DeviceProps& props = state_.props(device_);
  const V1Tables* v1 = pass == Pass::V1 ? &state_.v1_tables(device_) : nullptr;
  for (const Group& g : groups_) {
    if (g.chunks == 0) continue;
    LaunchArgs a{};
    a.tensors = reinterpret_cast<const DevTensor*>(dev_ + tensors_off_) + g.first;
    a.num_tensors = g.count;
    a.num_chunks = g.chunks;
    a.stats = reinterpret_cast<DevStats*>(dev_ + stats_off_) + g.first;
    a.plans = reinterpret_cast<DevPlan*>(dev_ + plans_off_) + g.first;
    a.thresholds = dev_ + thr_off_;
    a.counts = reinterpret_cast<unsigned long long*>(dev_ + counts_off_);
    a.bins = reinterpret_cast<unsigned long long*>(dev_ + bins_off_);
    int smem = 0;
    if (pass == Pass::Count) {
      smem = static_cast<int>(g.count_smem);
    } else if (pass == Pass::V1) {
      a.v1_guess = v1->guess;
      a.v1_thresholds64 = v1->thresholds64;
      a.nb = v1->nb;
      smem = static_cast<int>(is_f64(g.dtype) ? v1_smem_bytes<double>(v1->nb) : v1_smem_bytes<float>(v1->nb));
    }
    if (smem > smem_limit())
      throw std::runtime_error("histgpu CUDA: the " + std::string(pass == Pass::V1 ? "v1" : "count") +
                               " pass needs " + std::to_string(smem) + " bytes of shared memory per block; this GPU offers " +
                               std::to_string(props.smem_per_block_optin));
    const int per_sm = rt_.blocks_per_sm(pass, g.dtype, g.contiguous, g.mode, smem);
    if (per_sm <= 0) throw std::runtime_error("histgpu CUDA: kernel cannot be launched (occupancy 0)");
    std::uint64_t grid = static_cast<std::uint64_t>(per_sm) * static_cast<std::uint64_t>(props.multiprocessors);
    grid = std::min<std::uint64_t>(grid, g.chunks);
    std::uint64_t cpb = std::min<std::uint64_t>((g.chunks + grid - 1) / grid, kMaxChunksPerBlock);
    grid = (g.chunks + cpb - 1) / cpb;
    a.chunks_per_block = cpb;
    rt_.launch_pass(pass, g.dtype, g.contiguous, g.mode, a, static_cast<int>(grid), smem, stream_);
  }
}

void Batch::plan_on_device() {
  rt_.launch_plan(reinterpret_cast<const DevTensor*>(dev_ + tensors_off_), static_cast<int>(order_.size()),
                  reinterpret_cast<const DevStats*>(dev_ + stats_off_), reinterpret_cast<DevPlan*>(dev_ + plans_off_),
                  dev_ + thr_off_, total_k_, stream_);
}

void Batch::download() {
  rt_.copy_to_host(host_.data + stats_off_, dev_ + stats_off_, total_ - stats_off_, stream_);
  event_ = rt_.record(stream_);
  // The producers' later work (an optimizer updating weights in place) waits for these reads.
  for (Stream p : producers_) rt_.wait(p, event_);
  free_device();
}

bool Batch::done() { return event_ && rt_.query(event_); }

void Batch::wait() {
  if (!event_) throw std::logic_error("histgpu CUDA: waiting for a batch that was not downloaded");
  rt_.synchronize(event_);
}

RangeStats Batch::stats(int i) const {
  DevStats d;
  std::memcpy(&d, host_.data + stats_off_ + sizeof(DevStats) * pos_[i], sizeof d);
  return is_f64(dtypes_[i]) ? stats_from<double>(d, sizes_[i]) : stats_from<float>(d, sizes_[i]);
}

std::vector<std::uint64_t> Batch::counts(int i, std::size_t n) const {
  std::vector<std::uint64_t> c(n);
  std::memcpy(c.data(), host_.data + counts_off_ + counts_rel_[pos_[i]] * 8, n * 8);
  return c;
}

const char* Batch::thresholds(int i) const { return host_.data + thr_off_ + thr_rel_[pos_[i]]; }

void Batch::fold_sums(int i, BigFixed& sum, BigFixed& sumsq) const {
  const bool f64 = is_f64(dtypes_[i]);
  const int bins = f64 ? kExpBins<double> : kExpBins<float>;
  const int bias = f64 ? ExactBins<double>::kLsbBias : ExactBins<float>::kLsbBias;
  const auto* w = reinterpret_cast<const std::uint64_t*>(host_.data + bins_off_) + bins_rel_[pos_[i]];
  for (int e = 0; e < bins; ++e) {
    const std::uint64_t* b = w + static_cast<std::size_t>(e) * kBinWords;
    const int128 s = static_cast<int128>((static_cast<uint128>(b[1]) << 64) | b[0]);
    if (s != 0) sum.add(s, e - bias);
    for (int j = 0; j < kSqWords; ++j)
      if (b[kSumWords + j]) sumsq.add(static_cast<int128>(b[kSumWords + j]), 2 * (e - bias) + 64 * j);
  }
}

}  // namespace histgpu::cuda
