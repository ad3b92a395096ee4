// Host side of the CUDA engine: batches, device workspaces, pinned staging, launches.
//
// One Batch owns one device workspace (stream-ordered cudaMallocAsync) and a pinned host
// mirror of it with the same layout:
//   [tensors | stats | plans | thresholds | counts | bins]
// The host fills [tensors .. thresholds] and uploads it with one copy; the kernels write
// [stats .. bins]; one copy brings that back into the mirror, an event marks its arrival.
// Nothing here synchronises the device: a synchronous call waits on its own stream only.
#include "cuda/engine.hpp"

#include <cuda_runtime_api.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <mutex>
#include <stdexcept>
#include <type_traits>

#include "core/ordered.hpp"
#include "cuda/device_types.hpp"
#include "cuda/launch.hpp"

namespace histgpu::cuda {

namespace {

void check(cudaError_t e, const char* what) {
  if (e != cudaSuccess) {
    cudaGetLastError();  // clear a sticky-free error so later calls are not confused
    throw std::runtime_error(std::string("histgpu CUDA: ") + what + ": " + cudaGetErrorName(e) +
                             " (" + cudaGetErrorString(e) + ")");
  }
}
void check(int e, const char* what) { check(static_cast<cudaError_t>(e), what); }

cudaStream_t as_stream(void* s) { return static_cast<cudaStream_t>(s); }

std::uint64_t align_up(std::uint64_t v, std::uint64_t a) { return (v + a - 1) / a * a; }

bool is_f64(DType t) { return kernel_type(t) == KernelType::F64; }

// Makes `device` current for the lifetime of the guard.
class DeviceGuard {
 public:
  explicit DeviceGuard(int device) {
    check(cudaGetDevice(&prev_), "cudaGetDevice");
    if (device != prev_) check(cudaSetDevice(device), "cudaSetDevice");
    else prev_ = -1;
  }
  ~DeviceGuard() {
    if (prev_ >= 0) cudaSetDevice(prev_);
  }

 private:
  int prev_ = -1;
};

// ---- per-device facts and constant tables -------------------------------------------------------

struct DeviceFacts {
  int sms = 1;
  int smem_optin = 48 * 1024;
  bool pools = false;
  cudaMemPool_t pool = nullptr;  // histgpu's own stream-ordered pool (keeps 256 MiB mapped)
  // v1 tables (uploaded once): thresholds and first-guess tables per kernel type
  void* v1_thr[2] = {nullptr, nullptr};
  void* v1_guess[2] = {nullptr, nullptr};
  int v1_guess_size = 2;  // bytes per guess entry (core's table type)
  int v1_shift[2] = {0, 0};
  int nb = 0;
};

std::mutex g_facts_mutex;
std::map<int, DeviceFacts*> g_facts;

template <class K> void upload_v1_tables(DeviceFacts& f, int slot, cudaStream_t s) {
  const std::vector<K> thr = v1_thresholds<K>();
  const auto& guess = v1_guess_table<K>();
  using G = typename std::decay_t<decltype(guess)>::value_type;
  f.v1_guess_size = static_cast<int>(sizeof(G));
  f.nb = static_cast<int>(thr.size()) - 1;
  int bits = 0;
  while ((std::size_t{1} << bits) < guess.size()) ++bits;
  f.v1_shift[slot] = static_cast<int>(sizeof(K) * 8) - bits;
  check(cudaMalloc(&f.v1_thr[slot], thr.size() * sizeof(K)), "cudaMalloc (v1 thresholds)");
  check(cudaMalloc(&f.v1_guess[slot], guess.size() * sizeof(G)), "cudaMalloc (v1 guess table)");
  check(cudaMemcpyAsync(f.v1_thr[slot], thr.data(), thr.size() * sizeof(K), cudaMemcpyHostToDevice, s),
        "cudaMemcpyAsync (v1 thresholds)");
  check(cudaMemcpyAsync(f.v1_guess[slot], guess.data(), guess.size() * sizeof(G), cudaMemcpyHostToDevice, s),
        "cudaMemcpyAsync (v1 guess table)");
}

// Facts of the current device `device` (created on first use; the constant tables travel on a
// private stream, waited for here once, so no other stream is ever synchronised).
const DeviceFacts& facts(int device) {
  std::lock_guard<std::mutex> lock(g_facts_mutex);
  auto it = g_facts.find(device);
  if (it != g_facts.end()) return *it->second;
  auto* f = new DeviceFacts;  // lives as long as the process
  check(cudaDeviceGetAttribute(&f->sms, cudaDevAttrMultiProcessorCount, device), "multiprocessor count");
  int optin = 0;
  if (cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, device) == cudaSuccess && optin > 0)
    f->smem_optin = optin;
  cudaGetLastError();
  int pools = 0;
  if (cudaDeviceGetAttribute(&pools, cudaDevAttrMemoryPoolsSupported, device) == cudaSuccess)
    f->pools = pools != 0;
  cudaGetLastError();
  if (f->pools) {
    cudaMemPoolProps props{};
    props.allocType = cudaMemAllocationTypePinned;
    props.location.type = cudaMemLocationTypeDevice;
    props.location.id = device;
    if (cudaMemPoolCreate(&f->pool, &props) == cudaSuccess) {
      std::uint64_t keep = std::uint64_t(256) << 20;
      cudaMemPoolSetAttribute(f->pool, cudaMemPoolAttrReleaseThreshold, &keep);
    } else {
      f->pool = nullptr;
      f->pools = false;
    }
    cudaGetLastError();
  }
  cudaStream_t s;
  check(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking), "cudaStreamCreate");
  upload_v1_tables<float>(*f, 0, s);
  upload_v1_tables<double>(*f, 1, s);
  check(cudaStreamSynchronize(s), "uploading the v1 tables");
  cudaStreamDestroy(s);
  g_facts[device] = f;
  return *f;
}

// ---- pinned host memory ---------------------------------------------------------------------------

class PinnedPool {
 public:
  void* acquire(std::size_t n, std::size_t& got) {
    n = std::max<std::size_t>(n, 4096);
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto it = free_.lower_bound(n);
      if (it != free_.end() && it->first <= 4 * n) {
        void* p = it->second;
        got = it->first;
        held_ -= got;
        free_.erase(it);
        return p;
      }
    }
    std::size_t size = 4096;
    while (size < n) size *= 2;
    void* p = nullptr;
    check(cudaHostAlloc(&p, size, cudaHostAllocPortable), "cudaHostAlloc");
    got = size;
    return p;
  }
  void release(void* p, std::size_t n) {
    std::lock_guard<std::mutex> lock(mu_);
    if (held_ + n > kKeep) {
      cudaFreeHost(p);
      return;
    }
    free_.emplace(n, p);
    held_ += n;
  }

 private:
  static constexpr std::size_t kKeep = std::size_t(256) << 20;
  std::mutex mu_;
  std::multimap<std::size_t, void*> free_;
  std::size_t held_ = 0;
};

PinnedPool& pinned_pool() {
  static PinnedPool* pool = new PinnedPool;  // never destroyed: no CUDA calls at exit
  return *pool;
}

// ---- batches ----------------------------------------------------------------------------------------

template <class K> RangeStats stats_from(const DevStats& d) {
  using Key = typename FloatBits<K>::UInt;
  RangeStats s;
  s.num = d.num;
  s.nan = d.nan;
  s.posinf = d.posinf;
  s.neginf = d.neginf;
  if (d.num) {
    s.min = static_cast<double>(from_ordered_key<K>(static_cast<Key>(d.kmin)));
    s.max = static_cast<double>(from_ordered_key<K>(static_cast<Key>(d.kmax)));
  }
  return s;
}

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

}  // namespace

class Batch {
 public:
  enum class Mode { V2, V1 };

  Batch(const std::vector<BatchItem>& items, Mode mode, cudaStream_t stream, int device)
      : mode_(mode), stream_(stream), device_(device), facts_(facts(device)) {
    const int n = static_cast<int>(items.size());
    // Launch groups: same dtype and layout, in a stable order.
    std::vector<DevTensor> tmp(n);
    for (int i = 0; i < n; ++i) fill_tensor(tmp[i], items[i].view);
    order_.resize(n);
    for (int i = 0; i < n; ++i) order_[i] = i;
    std::stable_sort(order_.begin(), order_.end(), [&](int a, int b) {
      const auto ka = std::make_pair(tmp[a].dtype, tmp[a].contiguous);
      const auto kb = std::make_pair(tmp[b].dtype, tmp[b].contiguous);
      return ka < kb;
    });
    pos_.resize(n);
    for (int p = 0; p < n; ++p) pos_[order_[p]] = p;

    // Layout of the workspace.
    tensors_off_ = 0;
    stats_off_ = align_up(sizeof(DevTensor) * n, 256);
    plans_off_ = align_up(stats_off_ + sizeof(DevStats) * n, 256);
    thr_off_ = align_up(plans_off_ + sizeof(DevPlan) * n, 256);
    std::uint64_t thr_bytes = 0, counts = 0, bins_words = 0;
    thr_rel_.assign(n, 0);
    counts_rel_.assign(n, 0);
    bins_rel_.assign(n, 0);
    for (int p = 0; p < n; ++p) {
      const BatchItem& it = items[order_[p]];
      DevTensor& t = tmp[order_[p]];
      const bool f64 = is_f64(it.view.dtype);
      if (mode == Mode::V2) {
        t.k = it.k;
        thr_rel_[p] = thr_bytes;
        t.thr_off = thr_bytes;
        if (it.k > 0) thr_bytes += align_up((static_cast<std::uint64_t>(it.k) + 1) * (f64 ? 8 : 4), 16);
        counts_rel_[p] = counts;
        t.counts_off = counts;
        counts += static_cast<std::uint64_t>(std::max<std::int64_t>(it.k, 0));
      } else {
        t.k = 0;
        counts_rel_[p] = counts;
        t.counts_off = counts;
        counts += static_cast<std::uint64_t>(facts_.nb);
        bins_rel_[p] = bins_words;
        bins_words += static_cast<std::uint64_t>(f64 ? kExpBins<double> : kExpBins<float>) * kBinWords;
      }
    }
    // Every tensor of a group gets the same number of bins in V1 mode: a group has one
    // kernel type, and LaunchArgs::bins is indexed by the position in the group.
    counts_off_ = align_up(thr_off_ + thr_bytes, 256);
    bins_off_ = align_up(counts_off_ + counts * 8, 256);
    total_ = std::max<std::uint64_t>(align_up(bins_off_ + bins_words * 8, 256), 256);
    total_k_ = counts;

    // Groups and chunk numbering.
    int p = 0;
    while (p < n) {
      Group g;
      g.first = p;
      g.dtype = static_cast<DType>(tmp[order_[p]].dtype);
      g.contiguous = tmp[order_[p]].contiguous != 0;
      std::uint64_t chunks = 0;
      while (p < n && tmp[order_[p]].dtype == static_cast<std::int32_t>(g.dtype) &&
             (tmp[order_[p]].contiguous != 0) == g.contiguous) {
        DevTensor& t = tmp[order_[p]];
        t.chunk_begin = chunks;
        chunks += (t.n + kChunk - 1) / kChunk;
        t.chunk_end = chunks;
        if (mode == Mode::V2 && t.k > 0) {
          const std::uint64_t tb = align_up((static_cast<std::uint64_t>(t.k) + 1) * (is_f64(g.dtype) ? 8 : 4), 16);
          g.max_k_bytes = std::max(g.max_k_bytes, tb + static_cast<std::uint64_t>(t.k) * (t.k <= 1024 ? 128 : 4));
        }
        ++p;
      }
      g.count = p - g.first;
      g.chunks = chunks;
      groups_.push_back(g);
    }

    host_ = static_cast<char*>(pinned_pool().acquire(total_, host_size_));
    std::memset(host_, 0, total_);
    for (int q = 0; q < n; ++q) {
      std::memcpy(host_ + tensors_off_ + sizeof(DevTensor) * q, &tmp[order_[q]], sizeof(DevTensor));
      DevStats init{~0ull, 0, 0, 0, 0, 0};
      std::memcpy(host_ + stats_off_ + sizeof(DevStats) * q, &init, sizeof init);
    }
    if (facts_.pools) {
      check(cudaMallocFromPoolAsync(reinterpret_cast<void**>(&dev_), total_, facts_.pool, stream_),
            "cudaMallocFromPoolAsync");
    } else {
      check(cudaMalloc(reinterpret_cast<void**>(&dev_), total_), "cudaMalloc");
    }
  }

  ~Batch() {
    if (dev_) free_device();
    if (!event_ && uploaded_) cudaStreamSynchronize(stream_);  // an upload may still read host_
    if (event_) {
      cudaEventSynchronize(event_);  // the copy into host_ must land before host_ is reused
      cudaEventDestroy(event_);
    }
    if (host_) pinned_pool().release(host_, host_size_);
  }

  // Host plan of tensor i (core's V2Plan), for the count pass.
  void set_host_plan(int i, const V2Plan& plan) {
    const int p = pos_[i];
    DevPlan dp{plan.guess_lo, plan.guess_scale, 1, 0};
    std::memcpy(host_ + plans_off_ + sizeof(DevPlan) * p, &dp, sizeof dp);
    char* dst = host_ + thr_off_ + thr_rel_[p];
    if (plan.kernel == KernelType::F32)
      std::memcpy(dst, plan.thresholds_f32.data(), plan.thresholds_f32.size() * sizeof(float));
    else
      std::memcpy(dst, plan.thresholds_f64.data(), plan.thresholds_f64.size() * sizeof(double));
  }

  void upload() {
    uploaded_ = true;
    check(cudaMemcpyAsync(dev_, host_, counts_off_, cudaMemcpyHostToDevice, stream_), "upload");
    if (total_ > counts_off_)
      check(cudaMemsetAsync(dev_ + counts_off_, 0, total_ - counts_off_, stream_), "cudaMemsetAsync");
  }

  void launch(Pass pass) {
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
      const bool f64 = is_f64(g.dtype);
      const int slot = f64 ? 1 : 0;
      a.v1_thresholds = facts_.v1_thr[slot];
      if (facts_.v1_guess_size == 2) a.v1_guess16 = static_cast<const std::int16_t*>(facts_.v1_guess[slot]);
      else a.v1_guess32 = static_cast<const std::int32_t*>(facts_.v1_guess[slot]);
      a.v1_guess_shift = facts_.v1_shift[slot];
      a.nb = facts_.nb;
      a.bins = reinterpret_cast<unsigned long long*>(dev_ + bins_off_) + bins_rel_[g.first];
      int smem = 0;
      const int limit = facts_.smem_optin - static_cast<int>(sizeof(DevTensor)) - 1024;
      if (pass == Pass::Count) {
        smem = static_cast<int>(std::min<std::uint64_t>(g.max_k_bytes, static_cast<std::uint64_t>(std::min(limit, 96 * 1024))));
      } else if (pass == Pass::V1) {
        const std::uint64_t tb = align_up((static_cast<std::uint64_t>(facts_.nb) + 1) * (f64 ? 8 : 4), 16);
        const std::uint64_t cb = align_up(static_cast<std::uint64_t>(facts_.nb) * 4, 16);
        const std::uint64_t bb = static_cast<std::uint64_t>(f64 ? kExpBins<double> : kExpBins<float>) * kBinWords * 8;
        smem = static_cast<int>(tb + cb + bb);
        if (smem > limit) throw std::runtime_error("histgpu CUDA: not enough shared memory for the v1 pass");
      }
      const int per_sm = blocks_per_sm(pass, g.dtype, g.contiguous, smem);
      if (per_sm <= 0) throw std::runtime_error("histgpu CUDA: kernel cannot be launched (occupancy 0)");
      std::uint64_t grid = static_cast<std::uint64_t>(per_sm) * facts_.sms;
      grid = std::min<std::uint64_t>(grid, g.chunks);
      std::uint64_t cpb = (g.chunks + grid - 1) / grid;
      cpb = std::min<std::uint64_t>(cpb, 1u << 15);  // 32-bit block counters never overflow
      grid = (g.chunks + cpb - 1) / cpb;
      a.chunks_per_block = cpb;
      check(launch_pass(pass, g.dtype, g.contiguous, a, static_cast<int>(grid), smem, stream_),
            "kernel launch");
    }
  }

  void plan_on_device() {
    check(launch_plan(reinterpret_cast<const DevTensor*>(dev_ + tensors_off_), static_cast<int>(order_.size()),
                      reinterpret_cast<const DevStats*>(dev_ + stats_off_),
                      reinterpret_cast<DevPlan*>(dev_ + plans_off_), dev_ + thr_off_, total_k_, stream_),
          "planner launch");
  }

  // Copies [stats .. end) back, records the completion event and frees the workspace
  // (stream-ordered: the memory returns to the pool after the copy).
  void download() {
    check(cudaMemcpyAsync(host_ + stats_off_, dev_ + stats_off_, total_ - stats_off_, cudaMemcpyDeviceToHost,
                          stream_),
          "download");
    check(cudaEventCreateWithFlags(&event_, cudaEventDisableTiming), "cudaEventCreate");
    check(cudaEventRecord(event_, stream_), "cudaEventRecord");
    free_device();
  }

  bool done() {
    if (!event_) return false;
    const cudaError_t e = cudaEventQuery(event_);
    if (e == cudaErrorNotReady) {
      cudaGetLastError();
      return false;
    }
    check(e, "cudaEventQuery");
    return true;
  }
  void wait() { check(cudaEventSynchronize(event_), "waiting for the results"); }

  RangeStats stats(int i, DType dtype) const {
    DevStats d;
    std::memcpy(&d, host_ + stats_off_ + sizeof(DevStats) * pos_[i], sizeof d);
    return is_f64(dtype) ? stats_from<double>(d) : stats_from<float>(d);
  }
  std::vector<std::uint64_t> counts(int i, std::size_t n) const {
    std::vector<std::uint64_t> c(n);
    std::memcpy(c.data(), host_ + counts_off_ + counts_rel_[pos_[i]] * 8, n * 8);
    return c;
  }
  const char* thresholds(int i) const { return host_ + thr_off_ + thr_rel_[pos_[i]]; }
  const DevPlan& plan(int i) const { return *reinterpret_cast<const DevPlan*>(host_ + plans_off_ + sizeof(DevPlan) * pos_[i]); }

  // Folds tensor i's exact-sum bins into BigFixed values (core's representation: bin e holds
  // multiples of 2^(e - bias) and 2^(2 (e - bias))).
  template <class K> void fold_sums(int i, BigFixed& sum, BigFixed& sumsq) const {
    const auto* w = reinterpret_cast<const std::uint64_t*>(host_ + bins_off_) + bins_rel_[pos_[i]];
    constexpr int bias = ExactBins<K>::kLsbBias;
    for (int e = 0; e < kExpBins<K>; ++e) {
      const std::uint64_t* b = w + static_cast<std::size_t>(e) * kBinWords;
      const int128 s = static_cast<int128>((static_cast<uint128>(b[1]) << 64) | b[0]);
      if (s != 0) sum.add(s, e - bias);
      for (int j = 0; j < kSqWords; ++j)
        if (b[kSumWords + j]) sumsq.add(static_cast<int128>(b[kSumWords + j]), 2 * (e - bias) + 64 * j);
    }
  }

 private:
  struct Group {
    int first = 0, count = 0;
    DType dtype = DType::Float32;
    bool contiguous = true;
    std::uint64_t chunks = 0;
    std::uint64_t max_k_bytes = 0;
  };

  void free_device() {
    if (facts_.pools) cudaFreeAsync(dev_, stream_);
    else {
      cudaStreamSynchronize(stream_);  // only without stream-ordered allocation (old drivers)
      cudaFree(dev_);
    }
    dev_ = nullptr;
  }

  Mode mode_;
  cudaStream_t stream_;
  int device_;
  const DeviceFacts& facts_;
  std::vector<int> order_, pos_;
  std::vector<std::uint64_t> thr_rel_, counts_rel_, bins_rel_;
  std::vector<Group> groups_;
  std::uint64_t tensors_off_ = 0, stats_off_ = 0, plans_off_ = 0, thr_off_ = 0, counts_off_ = 0,
                bins_off_ = 0, total_ = 0, total_k_ = 0;
  char* host_ = nullptr;
  std::size_t host_size_ = 0;
  char* dev_ = nullptr;
  cudaEvent_t event_ = nullptr;
  bool uploaded_ = false;
};

// ---- device queries -----------------------------------------------------------------------------

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

int resolve_device(int device, const void* ptr) {
  if (device >= 0) return device;
  if (ptr) {
    const int d = pointer_device(reinterpret_cast<std::uintptr_t>(ptr));
    if (d >= 0) return d;
  }
  int cur = 0;
  check(cudaGetDevice(&cur), "cudaGetDevice");
  return cur;
}

// ---- the Engine -----------------------------------------------------------------------------------

RangeStats CudaEngine::range(const StridedView& view) {
  if (view.size() == 0) return RangeStats{};
  const int dev = resolve_device(device_, view.base);
  DeviceGuard guard(dev);
  Batch b({BatchItem{view, 0}}, Batch::Mode::V2, as_stream(stream_), dev);
  b.upload();
  b.launch(Pass::Range);
  b.download();
  b.wait();
  return b.stats(0, view.dtype);
}

std::vector<std::uint64_t> CudaEngine::count_v2(const StridedView& view, const V2Plan& plan, bool,
                                                RangeStats* observed) {
  if (observed) *observed = range(view);
  const std::int64_t k = plan.spec.k;
  if (view.size() == 0 || k <= 0) return std::vector<std::uint64_t>(static_cast<std::size_t>(std::max<std::int64_t>(k, 0)), 0);
  const int dev = resolve_device(device_, view.base);
  DeviceGuard guard(dev);
  Batch b({BatchItem{view, k}}, Batch::Mode::V2, as_stream(stream_), dev);
  b.set_host_plan(0, plan);
  b.upload();
  b.launch(Pass::Count);
  b.download();
  b.wait();
  return b.counts(0, static_cast<std::size_t>(k));
}

V1Raw CudaEngine::v1(const StridedView& view) {
  V1Raw raw;
  if (view.size() == 0) {
    raw.counts.assign(v1_default_limits().size(), 0);
    return raw;
  }
  const int dev = resolve_device(device_, view.base);
  DeviceGuard guard(dev);
  Batch b({BatchItem{view, 0}}, Batch::Mode::V1, as_stream(stream_), dev);
  b.upload();
  b.launch(Pass::V1);
  b.download();
  b.wait();
  raw.counts = b.counts(0, v1_default_limits().size());
  raw.stats = b.stats(0, view.dtype);
  if (is_f64(view.dtype)) b.fold_sums<double>(0, raw.sum, raw.sumsq);
  else b.fold_sums<float>(0, raw.sum, raw.sumsq);
  return raw;
}

// ---- asynchronous batches of v2 histograms ----------------------------------------------------------

namespace {

// Hands core's driver the counts the device already made, after checking that core's plan
// (which the driver has just built) has the very thresholds the device planner used.
class ReplayEngine final : public Engine {
 public:
  ReplayEngine(std::vector<std::uint64_t> counts, const char* thresholds)
      : counts_(std::move(counts)), thresholds_(thresholds) {}
  RangeStats range(const StridedView&) override { throw std::logic_error("histgpu: replay has no range"); }
  V1Raw v1(const StridedView&) override { throw std::logic_error("histgpu: replay has no v1"); }
  std::vector<std::uint64_t> count_v2(const StridedView&, const V2Plan& plan, bool, RangeStats*) override {
    const bool same =
        plan.kernel == KernelType::F32
            ? std::memcmp(plan.thresholds_f32.data(), thresholds_, plan.thresholds_f32.size() * sizeof(float)) == 0
            : std::memcmp(plan.thresholds_f64.data(), thresholds_, plan.thresholds_f64.size() * sizeof(double)) == 0;
    if (!same)
      throw std::logic_error(
          "histgpu internal error: the device planner's thresholds differ from core's plan; please report");
    called_ = true;
    return counts_;
  }
  bool called() const { return called_; }

 private:
  std::vector<std::uint64_t> counts_;
  const char* thresholds_;
  bool called_ = false;
};

}  // namespace

PendingV2::PendingV2(std::vector<BatchItem> items, void* stream, int device) : items_(std::move(items)) {
  for (auto& it : items_) {
    if (it.k < 0) it.k = 0;
    if (it.k > kMaxBuckets) throw std::invalid_argument("histgpu: bucket count above 2^24");
  }
  const void* first = nullptr;
  for (const auto& it : items_)
    if (it.view.size()) {
      first = it.view.base;
      break;
    }
  device_ = resolve_device(device, first);
  if (items_.empty()) return;
  DeviceGuard guard(device_);
  batch_ = std::make_unique<Batch>(items_, Batch::Mode::V2, as_stream(stream), device_);
  batch_->upload();
  batch_->launch(Pass::Range);
  batch_->plan_on_device();
  batch_->launch(Pass::Count);
  batch_->download();
}

PendingV2::~PendingV2() {
  if (!batch_) return;
  try {
    DeviceGuard guard(device_);
    batch_.reset();
  } catch (...) {
  }
}

bool PendingV2::done() {
  if (!batch_) return true;
  DeviceGuard guard(device_);
  return batch_->done();
}

void PendingV2::wait() {
  if (!batch_) return;
  DeviceGuard guard(device_);
  batch_->wait();
}

std::vector<V2Result> PendingV2::results() {
  wait();
  std::vector<V2Result> out;
  out.reserve(items_.size());
  for (std::size_t i = 0; i < items_.size(); ++i) {
    const BatchItem& it = items_[i];
    const int ii = static_cast<int>(i);
    const RangeStats s = batch_->stats(ii, it.view.dtype);
    ReplayEngine replay(batch_->counts(ii, static_cast<std::size_t>(it.k)), batch_->thresholds(ii));
    out.push_back(histogram_v2_in_range(replay, it.view, it.k, s, GlobalRange{s.min, s.max, repeat_stats(s, it.view.multiplicity).num}));
  }
  return out;
}

}  // namespace histgpu::cuda

namespace histgpu::cuda {

std::vector<V2Result> CudaEngine::v2_many(const std::vector<BatchItem>& items) {
  PendingV2 p(items, stream_, device_);
  return p.results();
}

}  // namespace histgpu::cuda
