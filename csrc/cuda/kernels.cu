// CUDA kernels of histgpu: the range pass, the v2 count pass, the v1 pass and the device
// planner. Every pass reads a batch of tensors of one dtype and layout (device_types.hpp).
//
// Bit-exactness (docs/semantics.md §4): counts are integers (32-bit per block in shared memory, merged
// into 64-bit global counters), min/max are selections of ordered keys, and sums are exact
// integer bins per exponent that the host folds into one correctly rounded double. Values are
// converted exactly as the CPU engine converts them (core/dtypes.hpp) and compared with the very
// thresholds the host computes (or the device planner, checked against them).
#include <cuda_runtime.h>

#include <cstdint>

#include "core/bucket_search.hpp"
#include "core/ordered.hpp"
#include "core/dtypes.hpp"
#include "cuda/device_types.hpp"
#include "cuda/launch.hpp"
#include "cuda/v2_plan.cuh"

#ifndef HISTGPU_CUDA_ARCH_LIST
#define HISTGPU_CUDA_ARCH_LIST "unknown"
#endif

namespace histgpu::cuda {
namespace {

using u32 = std::uint32_t;
using u64 = unsigned long long;
using int128 = __int128;
using uint128 = unsigned __int128;

constexpr int kWarp = 32;
constexpr int kUnroll = 4;  // 16-byte loads in flight per thread

__device__ __forceinline__ int lane_id() { return threadIdx.x & (kWarp - 1); }

template <class K> __device__ __forceinline__ K k_inf() {
  return from_bits<K>(sizeof(K) == 4 ? typename FloatBits<K>::UInt(0x7f800000u)
                                     : typename FloatBits<K>::UInt(0x7ff0000000000000ull));
}

// ---- multi-word atomic addition --------------------------------------------------------------

// Adds the nw-word little-endian integer v into w, modulo 2^(64 nw), with word-wise atomics.
// Every wrap of a word is seen by exactly one adder (old + add < old), who carries it upwards.
template <int NW> __device__ __forceinline__ void atomic_add_words(u64* w, const u64 (&v)[NW]) {
  u64 carry = 0;
#pragma unroll
  for (int i = 0; i < NW; ++i) {
    const u64 add = v[i] + carry;
    u64 next = (add < carry) ? 1 : 0;  // v[i] + carry wrapped (then add == 0)
    if (add != 0) {
      const u64 old = atomicAdd(&w[i], add);
      next += (old + add < old) ? 1 : 0;
    }
    carry = next;
  }
}

// ---- block-wide range statistics --------------------------------------------------------------

struct RangeState {
  u64 kmin, kmax, num, nan, posinf, neginf;
  __device__ void reset() {
    kmin = ~0ull;
    kmax = 0;
    num = nan = posinf = neginf = 0;
  }
  template <class K> __device__ __forceinline__ bool add(K x) {  // false for non-finite x
    const auto b = bits_of(x);
    if (!is_finite_bits<K>(b)) {
      if ((b & ~FloatBits<K>::kSign) != FloatBits<K>::kExpMask) ++nan;
      else if (b & FloatBits<K>::kSign) ++neginf;
      else ++posinf;
      return false;
    }
    const u64 key = ordered_key(x);
    kmin = key < kmin ? key : kmin;
    kmax = key > kmax ? key : kmax;
    ++num;
    return true;
  }
  // Warp reduction, then one set of atomics per warp. Called by every thread of the block.
  __device__ void flush(DevStats* s) {
#pragma unroll
    for (int off = kWarp / 2; off > 0; off /= 2) {
      const u64 a = __shfl_xor_sync(0xffffffffu, kmin, off);
      const u64 b = __shfl_xor_sync(0xffffffffu, kmax, off);
      kmin = a < kmin ? a : kmin;
      kmax = b > kmax ? b : kmax;
      num += __shfl_xor_sync(0xffffffffu, num, off);
      nan += __shfl_xor_sync(0xffffffffu, nan, off);
      posinf += __shfl_xor_sync(0xffffffffu, posinf, off);
      neginf += __shfl_xor_sync(0xffffffffu, neginf, off);
    }
    if (lane_id() == 0) {
      if (num) {
        atomicMin(&s->kmin, kmin);
        atomicMax(&s->kmax, kmax);
        atomicAdd(&s->num, num);
      }
      if (nan) atomicAdd(&s->nan, nan);
      if (posinf) atomicAdd(&s->posinf, posinf);
      if (neginf) atomicAdd(&s->neginf, neginf);
    }
    reset();
  }
};

// ---- warp-aggregated counting -----------------------------------------------------------------

// Adds 1 to c[g] for every calling lane: lanes with the same g are counted by one atomic.
template <class C> __device__ __forceinline__ void count_aggregated(C* c, int g) {
  const unsigned active = __activemask();
  const unsigned peers = __match_any_sync(active, g);
  if (lane_id() == __ffs(peers) - 1) atomicAdd(&c[g], static_cast<C>(__popc(peers)));
}

// ---- element iteration ------------------------------------------------------------------------

template <DType D> __device__ __forceinline__ typename DTypeTraits<D>::Storage load_raw(const char* p, bool aligned) {
  using Raw = typename DTypeTraits<D>::Storage;
  if (aligned) return *reinterpret_cast<const Raw*>(p);
  unsigned char tmp[sizeof(Raw)];
#pragma unroll
  for (int j = 0; j < static_cast<int>(sizeof(Raw)); ++j) tmp[j] = static_cast<unsigned char>(p[j]);
  Raw r;
  memcpy(&r, tmp, sizeof r);
  return r;
}

// Calls f(x) for the elements [a, b) of a contiguous tensor, x converted to the kernel type;
// the block's threads share the work, reading 16 bytes at a time where aligned.
template <DType D, class F>
__device__ __forceinline__ void for_contiguous(const DevTensor& t, u64 a, u64 b, F& f) {
  using Raw = typename DTypeTraits<D>::Storage;
  constexpr int V = 16 / sizeof(Raw);
  const Raw* p = reinterpret_cast<const Raw*>(t.base);
  const u64 addr = reinterpret_cast<u64>(p + a);
  u64 head = ((16 - (addr & 15)) & 15) / sizeof(Raw);
  head = head < b - a ? head : b - a;
  for (u64 i = a + threadIdx.x; i < a + head; i += blockDim.x) f(convert<D>(p[i]));
  const u64 s = a + head;
  const u64 nvec = (b - s) / V;
  const uint4* vp = reinterpret_cast<const uint4*>(p + s);
  const u64 step = static_cast<u64>(blockDim.x) * kUnroll;
  for (u64 v0 = threadIdx.x; v0 < nvec; v0 += step) {
    uint4 w[kUnroll];
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const u64 v = v0 + static_cast<u64>(u) * blockDim.x;
      if (v < nvec) w[u] = __ldg(vp + v);
    }
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const u64 v = v0 + static_cast<u64>(u) * blockDim.x;
      if (v < nvec) {
        Raw r[V];
        memcpy(r, &w[u], sizeof r);
#pragma unroll
        for (int j = 0; j < V; ++j) f(convert<D>(r[j]));
      }
    }
  }
  for (u64 i = s + nvec * V + threadIdx.x; i < b; i += blockDim.x) f(convert<D>(p[i]));
}

// Loads element `p` of dtype `dtype` (one whose kernel type is K) and converts it: the
// generic path's run-time switch, uniform across the block.
template <class K> __device__ __forceinline__ K load_any(const char* p, int dtype, bool aligned) {
#define HISTGPU_LOAD(D) \
  case static_cast<int>(D): return convert<D>(load_raw<D>(p, aligned));
  if constexpr (sizeof(K) == 4) {
    switch (dtype) {
      HISTGPU_LOAD(DType::Bool)
      HISTGPU_LOAD(DType::Int8)
      HISTGPU_LOAD(DType::UInt8)
      HISTGPU_LOAD(DType::Int16)
      HISTGPU_LOAD(DType::UInt16)
      HISTGPU_LOAD(DType::Float16)
      HISTGPU_LOAD(DType::BFloat16)
      HISTGPU_LOAD(DType::Float8E4M3FN)
      HISTGPU_LOAD(DType::Float8E5M2)
      default: return convert<DType::Float32>(load_raw<DType::Float32>(p, aligned));
    }
  } else {
    switch (dtype) {
      HISTGPU_LOAD(DType::Int32)
      HISTGPU_LOAD(DType::UInt32)
      HISTGPU_LOAD(DType::Int64)
      HISTGPU_LOAD(DType::UInt64)
      default: return convert<DType::Float64>(load_raw<DType::Float64>(p, aligned));
    }
  }
#undef HISTGPU_LOAD
}

// Any dtype of kernel type K and any strided view (contiguous ones too): element i of the
// row-major order sits at sum(idx_d * stride_d); neighbouring threads take neighbouring i.
template <class K, class F>
__device__ __forceinline__ void for_strided(const DevTensor& t, u64 a, u64 b, F& f) {
  const int nd = t.ndim;
  const bool aligned = t.aligned != 0;
  const int dtype = t.dtype;
  for (u64 i = a + threadIdx.x; i < b; i += blockDim.x) {
    u64 r = i;
    std::int64_t off = 0;
    for (int d = nd - 1; d > 0; --d) {
      const u64 ext = static_cast<u64>(t.shape[d]);
      u64 q;
      if (((r | ext) >> 32) == 0) q = static_cast<u32>(r) / static_cast<u32>(ext);
      else q = r / ext;
      off += static_cast<std::int64_t>(r - q * ext) * t.strides[d];
      r = q;
    }
    off += static_cast<std::int64_t>(r) * t.strides[0];
    f(load_any<K>(t.base + off, dtype, aligned));
  }
}

// kContig: a dedicated vectorised kernel for dtype D; otherwise the generic path for D's
// kernel type (D is then Float32 or Float64 and stands for every dtype of that kernel type).
template <DType D, bool kContig, class F>
__device__ __forceinline__ void for_chunk(const DevTensor& t, u64 a, u64 b, F& f) {
  if constexpr (kContig) for_contiguous<D>(t, a, b, f);
  else for_strided<typename DTypeTraits<D>::Kernel>(t, a, b, f);
}

// ---- exact sums: per-thread windowed accumulators ----------------------------------------------

// A finite x = m * 2^(e - bias) with e = max(exponent field, 1) (core/exact_sum.hpp). Each
// thread keeps the sum of m * 2^(e - base) and of m^2 * 2^(2 (e - base)) for the exponents in
// its window [base, base + kSumWindow) in registers; a value outside the window (rare: the
// window spans a factor of 65536) flushes the registers into the block's per-exponent bins
// and moves the window. Bins: bin e holds sum / sum of squares in units of 2^(e - bias) and
// 2^(2 (e - bias)), exactly like core's ExactBins, in kBinWords 64-bit words.
template <class K> struct SqAcc;
template <> struct SqAcc<float> {  // m^2 < 2^48, shifted by < 2^30: < 2^78 per value
  uint128 v = 0;
  __device__ __forceinline__ void add(u64 m, int d) { v += static_cast<uint128>(m * m) << (2 * d); }
  __device__ __forceinline__ bool nonzero() const { return v != 0; }
  __device__ __forceinline__ void words(u64 (&w)[kSqWords]) const {
    w[0] = static_cast<u64>(v);
    w[1] = static_cast<u64>(v >> 64);
    w[2] = 0;
  }
};
template <> struct SqAcc<double> {  // m^2 < 2^106, shifted by < 2^30: < 2^136 per value
  uint128 lo = 0;
  u64 hi = 0;
  __device__ __forceinline__ void add(u64 m, int d) {
    const uint128 sq = static_cast<uint128>(m) * m;
    const int s = 2 * d;
    const uint128 part = sq << s;
    const u64 top = s ? static_cast<u64>(sq >> (128 - s)) : 0;
    lo += part;
    hi += top + (lo < part ? 1 : 0);
  }
  __device__ __forceinline__ bool nonzero() const { return lo != 0 || hi != 0; }
  __device__ __forceinline__ void words(u64 (&w)[kSqWords]) const {
    w[0] = static_cast<u64>(lo);
    w[1] = static_cast<u64>(lo >> 64);
    w[2] = hi;
  }
};

template <class K> struct ExactAcc {
  using B = FloatBits<K>;
  int base = -1;
  int128 sum = 0;
  SqAcc<K> sq;

  __device__ __forceinline__ void flush(u64* bins) {
    if (base < 0 || (sum == 0 && !sq.nonzero())) return;
    u64* bin = bins + static_cast<u64>(base) * kBinWords;
    const u64 s[kSumWords] = {static_cast<u64>(sum), static_cast<u64>(static_cast<uint128>(sum) >> 64)};
    u64 q[kSqWords];
    sq.words(q);
    atomic_add_words<kSumWords>(bin, s);
    atomic_add_words<kSqWords>(bin + kSumWords, q);
    sum = 0;
    sq = SqAcc<K>{};
  }

  __device__ __forceinline__ void add(typename B::UInt u, u64* bins) {
    const int field = static_cast<int>((u & B::kExpMask) >> B::kMantBits);
    const u64 frac = static_cast<u64>(u & ((typename B::UInt(1) << B::kMantBits) - 1));
    const u64 m = field ? (frac | (u64(1) << B::kMantBits)) : frac;
    if (m == 0) return;  // zeros add nothing
    const int e = field ? field : 1;
    int d = e - base;
    if (base < 0 || static_cast<unsigned>(d) >= static_cast<unsigned>(kSumWindow)) {
      flush(bins);
      base = e - kSumWindow / 2;
      base = base < 0 ? 0 : base;
      d = e - base;
    }
    const int128 term = static_cast<int128>(m) << d;
    sum += (u & B::kSign) ? -term : term;
    sq.add(m, d);
  }
};

// ---- passes -------------------------------------------------------------------------------------
// A pass has: begin() when a block starts on a tensor (all threads; shared memory is ready
// after the __syncthreads that follows), skip() (uniform), add(x) per element, and flush()
// when the block leaves the tensor (all threads, after a __syncthreads).

template <class K> struct RangePass {
  RangeState st;
  __device__ void init(unsigned char*, int) { st.reset(); }
  __device__ void begin(const LaunchArgs&, const DevTensor&, int) {}
  __device__ bool skip() const { return false; }
  __device__ __forceinline__ void operator()(K x) { st.add(x); }
  __device__ void flush(const LaunchArgs& a, const DevTensor&, int ti) { st.flush(&a.stats[ti]); }
};

template <class K> struct CountPass {
  unsigned char* smem;
  int smem_bytes;
  const K* T;
  u32* sh;
  u64* global;
  int k, mode;  // mode: 0 global counters, 1 one shared copy, 2 one shared copy per lane
  bool active;
  K lo, scale, gmax;

  __device__ void init(unsigned char* s, int bytes) {
    smem = s;
    smem_bytes = bytes;
  }
  __device__ void begin(const LaunchArgs& a, const DevTensor& t, int ti) {
    const DevPlan plan = a.plans[ti];
    k = static_cast<int>(t.k);
    active = plan.active != 0 && t.k > 0;
    const K* tg = reinterpret_cast<const K*>(a.thresholds + t.thr_off);
    global = a.counts + t.counts_off;
    const u64 tbytes = (static_cast<u64>(k) + 1) * sizeof(K);
    const u64 tpad = (tbytes + 15) & ~u64(15);
    if (tpad + static_cast<u64>(k) * kWarp * 4 <= static_cast<u64>(smem_bytes) && k <= 1024) mode = 2;
    else if (tpad + static_cast<u64>(k) * 4 <= static_cast<u64>(smem_bytes)) mode = 1;
    else mode = 0;
    T = tg;
    if (active && mode != 0) {
      K* ts = reinterpret_cast<K*>(smem);
      for (int i = threadIdx.x; i <= k; i += blockDim.x) ts[i] = tg[i];
      sh = reinterpret_cast<u32*>(smem + tpad);
      const int ncounters = mode == 2 ? k * kWarp : k;
      for (int i = threadIdx.x; i < ncounters; i += blockDim.x) sh[i] = 0;
      T = ts;
    }
    lo = static_cast<K>(plan.lo);
    scale = static_cast<K>(plan.scale);
    gmax = static_cast<K>(k - 1);
  }
  __device__ bool skip() const { return !active; }
  __device__ __forceinline__ void operator()(K x) {
    if (!is_finite_bits<K>(bits_of(x))) return;
    K q = (x - lo) * scale;
    q = q > K(0) ? q : K(0);  // NaN (0 * inf) lands on 0 too
    q = q < gmax ? q : gmax;
    int g = static_cast<int>(q);
    if (x >= T[g + 1]) {
      ++g;
      if (x >= T[g + 1]) g = search_bucket(x, T, k);
    } else if (x < T[g]) {
      --g;
      if (x < T[g]) g = search_bucket(x, T, k);
    }
    if (mode == 2) atomicAdd(&sh[g * kWarp + lane_id()], 1u);
    else if (mode == 1) count_aggregated(sh, g);
    else count_aggregated(global, g);
  }
  __device__ void flush(const LaunchArgs&, const DevTensor&, int) {
    if (!active || mode == 0) return;
    for (int i = threadIdx.x; i < k; i += blockDim.x) {
      u64 c = 0;
      if (mode == 2) {
#pragma unroll 8
        for (int l = 0; l < kWarp; ++l) c += sh[i * kWarp + ((l + i) & (kWarp - 1))];
      } else {
        c = sh[i];
      }
      if (c) atomicAdd(&global[i], c);
    }
  }
};

template <class K> struct V1Pass {
  using Key = typename FloatBits<K>::UInt;
  unsigned char* smem;
  const K* T;
  u32* counters;
  u64* bins;
  int nb;
  RangeState st;
  ExactAcc<K> acc;
  const std::int16_t* g16;
  const std::int32_t* g32;
  int shift;

  __device__ void init(unsigned char* s, int) {
    smem = s;
    st.reset();
  }
  __device__ void begin(const LaunchArgs& a, const DevTensor&, int) {
    nb = a.nb;
    g16 = a.v1_guess16;
    g32 = a.v1_guess32;
    shift = a.v1_guess_shift;
    const u64 tbytes = ((static_cast<u64>(nb) + 1) * sizeof(K) + 15) & ~u64(15);
    const u64 cbytes = (static_cast<u64>(nb) * 4 + 15) & ~u64(15);
    K* ts = reinterpret_cast<K*>(smem);
    counters = reinterpret_cast<u32*>(smem + tbytes);
    bins = reinterpret_cast<u64*>(smem + tbytes + cbytes);
    const K* tg = static_cast<const K*>(a.v1_thresholds);
    for (int i = threadIdx.x; i <= nb; i += blockDim.x) ts[i] = tg[i];
    for (int i = threadIdx.x; i < nb; i += blockDim.x) counters[i] = 0;
    for (int i = threadIdx.x; i < kExpBins<K> * kBinWords; i += blockDim.x) bins[i] = 0;
    T = ts;
    acc = ExactAcc<K>{};
  }
  __device__ bool skip() const { return false; }
  __device__ __forceinline__ void operator()(K x) {
    if (!st.add(x)) return;
    const Key key = ordered_key(x);
    int g = g16 ? static_cast<int>(g16[key >> shift]) : static_cast<int>(g32[key >> shift]);
    while (x >= T[g + 1]) ++g;  // the guess never overshoots
    count_aggregated(counters, g);
    acc.add(bits_of(x), bins);
  }
  __device__ void flush_thread() { acc.flush(bins); }
  __device__ void flush(const LaunchArgs& a, const DevTensor& t, int ti) {
    st.flush(&a.stats[ti]);
    u64* gcounts = a.counts + t.counts_off;
    for (int i = threadIdx.x; i < nb; i += blockDim.x)
      if (counters[i]) atomicAdd(&gcounts[i], static_cast<u64>(counters[i]));
    u64* gbins = a.bins + static_cast<u64>(ti) * kExpBins<K> * kBinWords;
    for (int e = threadIdx.x; e < kExpBins<K>; e += blockDim.x) {
      const u64* b = bins + static_cast<u64>(e) * kBinWords;
      bool any = false;
#pragma unroll
      for (int w = 0; w < kBinWords; ++w) any |= b[w] != 0;
      if (!any) continue;
      const u64 s[kSumWords] = {b[0], b[1]};
      const u64 q[kSqWords] = {b[2], b[3], b[4]};
      atomic_add_words<kSumWords>(gbins + static_cast<u64>(e) * kBinWords, s);
      atomic_add_words<kSqWords>(gbins + static_cast<u64>(e) * kBinWords + kSumWords, q);
    }
  }
};

template <class P> __device__ __forceinline__ void flush_thread_if_any(P&) {}
template <class K> __device__ __forceinline__ void flush_thread_if_any(V1Pass<K>& p) { p.flush_thread(); }

// The tensor of the launch group that holds chunk c (tensors are in chunk order).
__device__ __forceinline__ int tensor_of_chunk(const LaunchArgs& a, u64 c) {
  int lo = 0, hi = a.num_tensors - 1;
  while (lo < hi) {
    const int mid = (lo + hi + 1) / 2;
    if (a.tensors[mid].chunk_begin <= c) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

template <DType D, bool kContig, template <class> class PassT>
__global__ void __launch_bounds__(kThreadsPerBlock) batch_kernel(const LaunchArgs args, int smem_bytes) {
  using K = typename DTypeTraits<D>::Kernel;
  extern __shared__ __align__(16) unsigned char smem[];
  __shared__ __align__(16) DevTensor cur;
  PassT<K> pass;
  pass.init(smem, smem_bytes);
  const u64 c0 = static_cast<u64>(blockIdx.x) * args.chunks_per_block;
  u64 c1 = c0 + args.chunks_per_block;
  c1 = c1 < args.num_chunks ? c1 : args.num_chunks;
  int ti = -1;
  for (u64 c = c0; c < c1; ++c) {
    int tn = tensor_of_chunk(args, c);
    // Skip empty tensors that share a chunk_begin with the next one.
    while (args.tensors[tn].chunk_end <= c) ++tn;
    if (tn != ti) {
      if (ti >= 0) {
        flush_thread_if_any(pass);
        __syncthreads();
        pass.flush(args, cur, ti);
      }
      __syncthreads();
      {
        const u64* src = reinterpret_cast<const u64*>(&args.tensors[tn]);
        u64* dst = reinterpret_cast<u64*>(&cur);
        for (int i = threadIdx.x; i < static_cast<int>(sizeof(DevTensor) / 8); i += blockDim.x) dst[i] = src[i];
      }
      __syncthreads();
      pass.begin(args, cur, tn);
      __syncthreads();
      ti = tn;
    }
    if (pass.skip()) continue;
    const u64 a = (c - cur.chunk_begin) * kChunk;
    u64 b = a + kChunk;
    b = b < cur.n ? b : cur.n;
    for_chunk<D, kContig>(cur, a, b, pass);
  }
  if (ti >= 0) {
    flush_thread_if_any(pass);
    __syncthreads();
    pass.flush(args, cur, ti);
  }
}

// ---- device planner -----------------------------------------------------------------------------

template <class K>
__device__ void plan_one(const DevTensor& t, const DevStats& st, DevPlan* plan, char* thresholds,
                         std::int64_t j) {
  using Key = typename FloatBits<K>::UInt;
  const std::int64_t k = t.k;
  const Key klo = static_cast<Key>(st.kmin), khi = static_cast<Key>(st.kmax);
  const double mn = static_cast<double>(from_ordered_key<K>(klo));
  const double mx = static_cast<double>(from_ordered_key<K>(khi));
  const bool active = st.num > 0 && k > 0 && d_sub(mx, mn) != 0.0;
  if (!active) {
    if (j == 0) *plan = DevPlan{0.0, 0.0, 0, 0};
    return;
  }
  K* T = reinterpret_cast<K*>(thresholds + t.thr_off);
  const SpecHD spec = make_spec(mn, mx, k);
  if (j == 0) {
    T[0] = -k_inf<K>();
    T[k] = k_inf<K>();
    *plan = DevPlan{mn, d_div(spec.halved ? 0.5 : 1.0, spec.width), 1, 0};
    return;
  }
  const std::int64_t top = key_bucket<K>(spec, khi);
  T[j] = plan_threshold<K>(spec, klo, khi, top, j);
}

__global__ void plan_kernel(const DevTensor* tensors, int num_tensors, const DevStats* stats,
                            DevPlan* plans, char* thresholds, u64 total) {
  for (u64 g = static_cast<u64>(blockIdx.x) * blockDim.x + threadIdx.x; g < total;
       g += static_cast<u64>(gridDim.x) * blockDim.x) {
    int lo = 0, hi = num_tensors - 1;  // last tensor with counts_off <= g and k > 0
    while (lo < hi) {
      const int mid = (lo + hi + 1) / 2;
      if (tensors[mid].counts_off <= g) lo = mid;
      else hi = mid - 1;
    }
    while (tensors[lo].k == 0 || tensors[lo].counts_off + static_cast<u64>(tensors[lo].k) <= g) ++lo;
    const DevTensor& t = tensors[lo];
    const std::int64_t j = static_cast<std::int64_t>(g - t.counts_off);
    const auto dt = static_cast<DType>(t.dtype);
    const bool f64 = dt == DType::Int32 || dt == DType::UInt32 || dt == DType::Int64 ||
                     dt == DType::UInt64 || dt == DType::Float64;
    if (f64) plan_one<double>(t, stats[lo], &plans[lo], thresholds, j);
    else plan_one<float>(t, stats[lo], &plans[lo], thresholds, j);
  }
}

// ---- dispatch -----------------------------------------------------------------------------------

template <DType D, bool C> const void* kernel_ptr(Pass pass) {
  switch (pass) {
    case Pass::Range: return reinterpret_cast<const void*>(&batch_kernel<D, C, RangePass>);
    case Pass::Count: return reinterpret_cast<const void*>(&batch_kernel<D, C, CountPass>);
    default: return reinterpret_cast<const void*>(&batch_kernel<D, C, V1Pass>);
  }
}

// Dedicated vectorised kernels for the dtypes that fill models (contiguous only); one generic
// kernel per kernel type for everything else, which keeps compile times short.
const void* kernel_for(Pass pass, DType dtype, bool contiguous) {
  if (contiguous) {
    switch (dtype) {
      case DType::Float32: return kernel_ptr<DType::Float32, true>(pass);
      case DType::BFloat16: return kernel_ptr<DType::BFloat16, true>(pass);
      case DType::Float16: return kernel_ptr<DType::Float16, true>(pass);
      case DType::Float64: return kernel_ptr<DType::Float64, true>(pass);
      default: break;
    }
  }
  if (static_cast<int>(dtype) < 0 || dtype >= DType::Count_) return nullptr;
  return kernel_type(dtype) == KernelType::F64 ? kernel_ptr<DType::Float64, false>(pass)
                                               : kernel_ptr<DType::Float32, false>(pass);
}

}  // namespace

int launch_pass(Pass pass, DType dtype, bool contiguous, const LaunchArgs& args, int grid, int smem,
                void* stream) {
  const void* fn = kernel_for(pass, dtype, contiguous);
  if (!fn) return static_cast<int>(cudaErrorInvalidValue);
  if (grid <= 0) return 0;
  LaunchArgs a = args;
  int bytes = smem;
  void* params[] = {&a, &bytes};
  return static_cast<int>(cudaLaunchKernel(fn, dim3(grid), dim3(kThreadsPerBlock), params,
                                           static_cast<std::size_t>(smem),
                                           static_cast<cudaStream_t>(stream)));
}

int blocks_per_sm(Pass pass, DType dtype, bool contiguous, int smem) {
  const void* fn = kernel_for(pass, dtype, contiguous);
  if (!fn) return 0;
  if (smem > 48 * 1024) {
    if (cudaFuncSetAttribute(fn, cudaFuncAttributeMaxDynamicSharedMemorySize, smem) != cudaSuccess) {
      cudaGetLastError();
      return 0;
    }
  }
  int blocks = 0;
  if (cudaOccupancyMaxActiveBlocksPerMultiprocessor(&blocks, fn, kThreadsPerBlock,
                                                    static_cast<std::size_t>(smem)) != cudaSuccess) {
    cudaGetLastError();
    return 0;
  }
  return blocks;
}

int launch_plan(const DevTensor* tensors, int num_tensors, const DevStats* stats, DevPlan* plans,
                char* thresholds, std::uint64_t total, void* stream) {
  if (total == 0 || num_tensors == 0) return 0;
  const std::uint64_t want = (total + kThreadsPerBlock - 1) / kThreadsPerBlock;
  const unsigned grid = static_cast<unsigned>(want < 65535 ? want : 65535);
  plan_kernel<<<grid, kThreadsPerBlock, 0, static_cast<cudaStream_t>(stream)>>>(
      tensors, num_tensors, stats, plans, thresholds, static_cast<u64>(total));
  return static_cast<int>(cudaGetLastError());
}

std::string compiled_architectures() { return HISTGPU_CUDA_ARCH_LIST; }

}  // namespace histgpu::cuda
