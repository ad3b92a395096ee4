// Plain structs shared by the kernels and the host side of the CUDA engine (batch.cpp). No CUDA
// header is needed to read them.
//
// Every launch works on a *batch* of tensors: one tensor is a batch of one, and many tensors
// (histogram_many, the writer's add_histograms) need the same number of launches as one. Each
// tensor is cut into chunks of kChunk elements (policy.hpp); the blocks of a launch take
// contiguous runs of the batch's chunks, so a block switches tensors at most a few times and
// flushes its shared-memory counters only then.
#pragma once
#include <cstdint>

#include "core/types.hpp"

namespace histgpu::cuda {

// Exact sums of the v1 pass (block/exact_sums.cuh): bin b of a tensor holds the sum of
// m * 2^(e - b) over its values x = m * 2^(e - bias) in two 64-bit words (two's complement), and
// the sum of m^2 * 2^(2 (e - b)) in four (unsigned).
constexpr int kSumWords = 2;
constexpr int kSqWords = 4;
constexpr int kBinWords = kSumWords + kSqWords;
template <class K> constexpr int kExpBins = sizeof(K) == 4 ? 256 : 2048;  // exponent fields

// One tensor of a batch, as the kernels read it.
struct DevTensor {
  const char* base;
  std::int32_t dtype;       // DType code
  std::int32_t ndim;        // 1 for contiguous tensors
  std::int32_t itemsize;
  std::int32_t contiguous;  // 1: ndim == 1, stride == itemsize, base aligned to itemsize
  std::int32_t aligned;     // 1: base and every stride are multiples of itemsize
  std::int32_t pad_;
  std::uint64_t n;            // elements
  std::uint64_t chunk_begin;  // first chunk of this tensor, counted within its launch group
  std::uint64_t chunk_end;
  std::int64_t k;             // v2 buckets (0: no count pass)
  std::uint64_t thr_off;      // byte offset of T[0..k] in the thresholds area
  std::uint64_t counts_off;   // element offset of this tensor's u64 counters
  std::uint64_t bins_off;     // element offset of this tensor's exact-sum bins (v1)
  std::int64_t shape[kMaxDims];
  std::int64_t strides[kMaxDims];  // bytes
};

// Range accumulators of one tensor, in device memory. Keys are ordered keys
// (core/ordered.hpp) widened to 64 bits; num counts the finite values.
struct DevStats {
  unsigned long long kmin, kmax, num, nan, posinf, neginf;
};

// The count pass's plan for one tensor: the first guess (x - lo) * scale and whether there is
// anything to count. Written by the device planner.
struct DevPlan {
  double lo, scale;     // in the kernel type when read (float kernels cast them)
  std::int32_t active;  // 0: leave the counts at zero (no finite value, or one distinct value)
  std::int32_t pad_;
};

// One entry of the v1 guess table of float32 keys: the first bucket of a 13-bit key prefix and
// the float32 threshold of the next bucket (a prefix spans less than one 1.1x step, so the
// bucket of x is g or g + 1).
struct V1Guess {
  float next;
  std::int32_t bucket;
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
  unsigned long long* bins;   // v1 exact sums, at DevTensor::bins_off
  // v1 pass: TensorFlow's fixed limits.
  const V1Guess* v1_guess;    // kV1GuessEntries entries
  const double* v1_thresholds64;  // T[0..nb + 1] in float64 (float64 kernels)
  std::int32_t nb;            // v1 buckets
  std::int32_t pad2_;
};

}  // namespace histgpu::cuda
