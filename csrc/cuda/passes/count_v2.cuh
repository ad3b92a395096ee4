// The v2 count pass: each finite value's bucket from the first guess (x - lo) * scale, fixed
// up against the thresholds T[g], T[g + 1] (core/thresholds.hpp), counted where CountMode says.
#pragma once
#include "core/bucket_search.hpp"
#include "core/ordered.hpp"
#include "cuda/device_types.hpp"
#include "cuda/markers.hpp"
#include "cuda/policy.hpp"
#include "cuda/simt.hpp"

namespace histgpu::cuda {

// Adds 1 to c[g] for every valid lane: lanes with the same g are counted by one atomic. Called
// by all lanes of the warp (invalid ones pass valid = false).
template <class C> HISTGPU_DEVICE void count_aggregated(C* c, int g, bool valid) {
  const simt::u32 peers = simt::match_any(valid ? static_cast<simt::u32>(g) : 0xffffffffu);
  if (valid && static_cast<int>(simt::lane_id()) == simt::first_lane(peers))
    simt::atomic_add(&c[g], static_cast<C>(simt::popc(peers)));
}

template <class K, CountMode kMode> struct CountPass {
  static constexpr bool kTableInShared = kMode != CountMode::GlobalTable;
  static constexpr bool kVector4 = false;
  unsigned char* smem;
  const K* T;
  simt::u32* sh;
  simt::u64* global;
  int k;
  bool active;
  K lo, scale, last_bucket;  // the first guess (x - lo) * scale, clamped to [0, k - 1]

  HISTGPU_DEVICE void init(unsigned char* s, int) { smem = s; }
  HISTGPU_DEVICE void begin(const LaunchArgs& a, const DevTensor& t, int ti) {
    const DevPlan plan = a.plans[ti];
    k = static_cast<int>(t.k);
    active = plan.active != 0 && t.k > 0;
    const K* tg = reinterpret_cast<const K*>(a.thresholds + t.thr_off);
    global = a.counts + t.counts_off;
    T = tg;
    if (active && kTableInShared) {
      K* ts = reinterpret_cast<K*>(smem);
      for (int i = simt::thread_rank(); i <= k; i += simt::block_size()) ts[i] = tg[i];
      T = ts;
      if constexpr (kMode == CountMode::LaneCounters || kMode == CountMode::SharedCounters) {
        sh = reinterpret_cast<simt::u32*>(smem + table_bytes(k, sizeof(K)));
        const int n = kMode == CountMode::LaneCounters ? k * static_cast<int>(simt::kWarp) : k;
        for (int i = simt::thread_rank(); i < n; i += simt::block_size()) sh[i] = 0;
      }
    }
    lo = static_cast<K>(plan.lo);
    scale = static_cast<K>(plan.scale);
    last_bucket = static_cast<K>(k - 1);
  }
  HISTGPU_DEVICE bool skip() const { return !active; }
  HISTGPU_DEVICE void operator()(K x, bool valid) {
    valid = valid && is_finite_bits<K>(bits_of(x));
    x = valid ? x : lo;  // what is not counted takes bucket 0's path: no branch on validity
    K q = (x - lo) * scale;
    q = q > K(0) ? q : K(0);
    q = q < last_bucket ? q : last_bucket;
    int g = static_cast<int>(q);
    if (x >= T[g + 1]) {
      ++g;
      if (x >= T[g + 1]) g = search_bucket(x, T, k);
    } else if (x < T[g]) {
      --g;
      if (x < T[g]) g = search_bucket(x, T, k);
    }
    if constexpr (kMode == CountMode::LaneCounters) {
      if (valid) simt::atomic_add(&sh[g * static_cast<int>(simt::kWarp) + static_cast<int>(simt::lane_id())], 1u);
    } else if constexpr (kMode == CountMode::SharedCounters) {
      count_aggregated(sh, g, valid);
    } else {
      count_aggregated(global, g, valid);
    }
  }
  HISTGPU_DEVICE void end_chunk(const LaunchArgs&, const DevTensor&, int) {}
  HISTGPU_DEVICE void flush(const LaunchArgs&, const DevTensor&, int) {
    if constexpr (kMode == CountMode::LaneCounters || kMode == CountMode::SharedCounters) {
      if (!active) return;
      for (int i = simt::thread_rank(); i < k; i += simt::block_size()) {
        simt::u64 c = 0;
        if constexpr (kMode == CountMode::LaneCounters) {
          // Lanes read rotated columns: no two threads of a warp hit one bank.
#pragma unroll 8
          for (int l = 0; l < static_cast<int>(simt::kWarp); ++l)
            c += sh[i * static_cast<int>(simt::kWarp) + ((l + i) & (static_cast<int>(simt::kWarp) - 1))];
        } else {
          c = sh[i];
        }
        if (c) simt::atomic_add(&global[i], c);
      }
    }
  }
};

}  // namespace histgpu::cuda
