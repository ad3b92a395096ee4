// Plain structs shared by the CUDA kernels (kernels.cu) and the host side of the CUDA engine
// (engine.cpp). No CUDA header is needed to read them.
//
// Every launch works on a *batch* of tensors: one tensor is a batch of one, and many tensors
// (histogram_many, the writer's add_histograms) need the same number of launches as one.
// Each tensor is cut into chunks of kChunk elements; the blocks of a launch take contiguous
// runs of the batch's chunks, so a block switches tensors at most a few times and flushes its
// shared-memory counters only then.
#pragma once
#include <cstdint>

#include "core/types.hpp"

namespace histgpu::cuda {

// Elements per chunk (a multiple of every vector width: 16 bytes of 1-byte elements).
constexpr std::uint64_t kChunk = std::uint64_t(1) << 16;

// Exponent window of the per-thread exact-sum accumulators (see kernels.cu, ExactAcc).
constexpr int kSumWindow = 16;

// Words per exact-sum bin: 2 for the sum (int128, two's complement), 3 for the sum of
// squares (unsigned 192-bit); every word is an unsigned 64-bit two's complement digit.
constexpr int kSumWords = 2;
constexpr int kSqWords = 3;
constexpr int kBinWords = kSumWords + kSqWords;

template <class K> constexpr int kExpBins = sizeof(K) == 4 ? 256 : 2048;  // exponent fields

// One tensor of a batch, as the kernels read it.
struct DevTensor {
  const char* base;
  std::int32_t dtype;     // DType code
  std::int32_t ndim;      // 1 for contiguous tensors
  std::int32_t itemsize;
  std::int32_t contiguous;  // 1: ndim == 1, stride == itemsize, base aligned to itemsize
  std::int32_t aligned;     // 1: base and every stride are multiples of itemsize
  std::int32_t pad_;
  std::uint64_t n;            // elements
  std::uint64_t chunk_begin;  // first chunk of this tensor, counted within its launch group
  std::uint64_t chunk_end;
  std::int64_t k;             // v2 buckets (0: no count pass)
  std::uint64_t thr_off;      // byte offset of T[0..k] in the thresholds area
  std::uint64_t counts_off;   // element offset of this tensor's counters (u64)
  std::int64_t shape[kMaxDims];
  std::int64_t strides[kMaxDims];  // bytes
};

// Range accumulators of one tensor, in device memory. Keys are ordered keys
// (core/ordered.hpp) widened to 64 bits.
struct DevStats {
  unsigned long long kmin, kmax, num, nan, posinf, neginf;
};

// The count pass's plan for one tensor: the first guess (x - lo) * scale and whether there
// is anything to count. Written by the host (Engine::count_v2) or by the device planner.
struct DevPlan {
  double lo, scale;      // in the kernel type when read (float kernels cast them)
  std::int32_t active;   // 0: leave the counts at zero (no finite value, or one distinct value)
  std::int32_t pad_;
};

// Where a launch reads its batch and writes its results (device pointers).
struct LaunchArgs {
  const DevTensor* tensors;   // the launch group's tensors
  std::int32_t num_tensors;
  std::int32_t pad_;
  std::uint64_t num_chunks;   // chunks of the whole group
  std::uint64_t chunks_per_block;
  DevStats* stats;            // one per tensor of the group
  DevPlan* plans;             // one per tensor of the group (count pass)
  char* thresholds;           // T tables (count pass), K-typed, at DevTensor::thr_off
  unsigned long long* counts; // counters, at DevTensor::counts_off
  // v1 pass: fixed TensorFlow limits.
  const void* v1_thresholds;  // K-typed T[0..nb]
  const std::int16_t* v1_guess16;   // one of the two, per the core's guess table type
  const std::int32_t* v1_guess32;
  std::int32_t v1_guess_shift;      // key >> shift indexes the guess table
  std::int32_t nb;                  // v1: buckets; v2: unused
  unsigned long long* bins;         // v1 exact sums: [tensor][exp_bins<K>()][kBinWords]
  std::int32_t shared_counters;     // count pass: 0 global, 1 one shared copy, 2 one per lane
  std::int32_t pad2_;
};

}  // namespace histgpu::cuda
