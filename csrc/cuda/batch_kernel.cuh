// The body of every batch kernel, and of the device planner, written once for the GPU build
// (kernels.cu) and the emulated build (kernels_host.cpp).
//
// A block walks its run of the launch group's chunks; where the run crosses into another
// tensor the pass flushes (shared counters, range, exact sums) and begins the next.
#pragma once
#include <cstdint>

#include "cuda/block/load.cuh"
#include "cuda/device_types.hpp"
#include "cuda/passes/plan.cuh"
#include "cuda/policy.hpp"
#include "cuda/simt.hpp"

namespace histgpu::cuda {

// Static shared memory of a batch block: the tensor it works on.
struct BlockShared {
  DevTensor tensor;
};

// The tensor of the launch group that holds chunk c (tensors are in chunk order).
HISTGPU_DEVICE int tensor_of_chunk(const LaunchArgs& a, simt::u64 c) {
  int lo = 0, hi = a.num_tensors - 1;
  while (lo < hi) {
    const int mid = (lo + hi + 1) / 2;
    if (a.tensors[mid].chunk_begin <= c) lo = mid;
    else hi = mid - 1;
  }
  while (a.tensors[lo].chunk_end <= c) ++lo;  // empty tensors share a chunk_begin with the next
  return lo;
}

template <DType D, bool kContig, class Pass>
HISTGPU_DEVICE void batch_block(const LaunchArgs& args, int smem_bytes, unsigned char* smem, BlockShared& shared) {
  Pass pass;
  pass.init(smem, smem_bytes);
  const simt::u64 c0 = static_cast<simt::u64>(simt::block_rank()) * args.chunks_per_block;
  simt::u64 c1 = c0 + args.chunks_per_block;
  c1 = c1 < args.num_chunks ? c1 : args.num_chunks;
  DevTensor& cur = shared.tensor;
  int ti = -1;
  for (simt::u64 c = c0; c < c1; ++c) {
    const int tn = tensor_of_chunk(args, c);
    if (tn != ti) {
      if (ti >= 0) {
        simt::sync_block();
        pass.flush(args, cur, ti);
      }
      simt::sync_block();
      {
        const simt::u64* src = reinterpret_cast<const simt::u64*>(&args.tensors[tn]);
        simt::u64* dst = reinterpret_cast<simt::u64*>(&cur);
        for (unsigned i = simt::thread_rank(); i < sizeof(DevTensor) / 8; i += simt::block_size()) dst[i] = src[i];
      }
      simt::sync_block();
      pass.begin(args, cur, tn);
      simt::sync_block();
      ti = tn;
    }
    if (pass.skip()) continue;
    const simt::u64 a = (c - cur.chunk_begin) * kChunk;
    simt::u64 b = a + kChunk;
    b = b < cur.n ? b : cur.n;
    for_chunk<D, kContig>(cur, a, b, pass);
    pass.end_chunk(args, cur, ti);
  }
  if (ti >= 0) {
    simt::sync_block();
    pass.flush(args, cur, ti);
  }
}

// ---- the device planner: one thread per threshold of every tensor with k > 0 ----------------

template <class K> HISTGPU_DEVICE K k_inf() {
  return from_bits<K>(sizeof(K) == 4 ? typename FloatBits<K>::UInt(0x7f800000u)
                                     : typename FloatBits<K>::UInt(0x7ff0000000000000ull));
}

template <class K>
HISTGPU_DEVICE void plan_one(const DevTensor& t, const DevStats& st, DevPlan* plan, char* thresholds, std::int64_t j) {
  using Key = typename FloatBits<K>::UInt;
  const std::int64_t k = t.k;
  const Key klo = static_cast<Key>(st.kmin), khi = static_cast<Key>(st.kmax);
  const simt::u64 num = t.n - (st.nan + st.posinf + st.neginf);
  const double mn = static_cast<double>(from_ordered_key<K>(klo));
  const double mx = static_cast<double>(from_ordered_key<K>(khi));
  const bool active = num > 0 && k > 0 && d_sub(mx, mn) != 0.0;
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

// Threads g of the grid (grid-stride) plan threshold j of the tensor whose counters hold g.
HISTGPU_DEVICE void plan_block(const DevTensor* tensors, int num_tensors, const DevStats* stats, DevPlan* plans,
                               char* thresholds, simt::u64 total) {
  const simt::u64 stride = static_cast<simt::u64>(simt::grid_size()) * simt::block_size();
  for (simt::u64 g = static_cast<simt::u64>(simt::block_rank()) * simt::block_size() + simt::thread_rank(); g < total;
       g += stride) {
    int lo = 0, hi = num_tensors - 1;  // last tensor with counts_off <= g and k > 0
    while (lo < hi) {
      const int mid = (lo + hi + 1) / 2;
      if (tensors[mid].counts_off <= g) lo = mid;
      else hi = mid - 1;
    }
    while (tensors[lo].k == 0 || tensors[lo].counts_off + static_cast<simt::u64>(tensors[lo].k) <= g) ++lo;
    const DevTensor& t = tensors[lo];
    const std::int64_t j = static_cast<std::int64_t>(g - t.counts_off);
    if (kernel_type(static_cast<DType>(t.dtype)) == KernelType::F64)
      plan_one<double>(t, stats[lo], &plans[lo], thresholds, j);
    else
      plan_one<float>(t, stats[lo], &plans[lo], thresholds, j);
  }
}

}  // namespace histgpu::cuda
