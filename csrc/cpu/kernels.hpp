// The innermost loops of the CPU engine. The sources in csrc/cpu/kernels/ are compiled once per
// instruction set (baseline, AVX2, AVX-512); dispatch.cpp picks one table at run time.
#pragma once
#include <cstddef>
#include <cstdint>

#include "core/exact_sum.hpp"
#include "core/ordered.hpp"
#include "core/types.hpp"

namespace histgpu::cpu {

// Elements handed to a kernel at once; strided or narrow inputs are converted into a
// per-thread buffer of this size, so no temporary grows with the input.
constexpr std::size_t kBlock = 2048;

template <class K> struct RangeAcc {
  using Key = typename FloatBits<K>::UInt;
  Key kmin = ~Key(0);  // ordered keys of the finite min / max
  Key kmax = 0;
  std::uint64_t num = 0, nan = 0, posinf = 0, neginf = 0;
  void merge(const RangeAcc& o) {
    if (o.kmin < kmin) kmin = o.kmin;
    if (o.kmax > kmax) kmax = o.kmax;
    num += o.num; nan += o.nan; posinf += o.posinf; neginf += o.neginf;
  }
};

// Counting against a threshold table T[0..nb] (core/thresholds.hpp).
// v2: hist has `lanes` private copies of nb counters, so that repeated hits of one bucket do
// not serialise on one memory cell, plus one spare counter (lanes * nb) that kernels may use
// as a bin for values they leave out.
// v1: `lanes` copies of nb + 1 counters; counter nb of each copy takes values left out, and
// the threshold table has one more +inf entry, T[nb + 1], so that bucket nb is never left.
template <class K> struct CountArgs {
  const K* thresholds = nullptr;
  std::int32_t nb = 0;
  std::int32_t lanes = 1;  // a power of two
  bool skip_nonfinite = false;
  // v2 first guess: (x - lo) * scale, clamped to [0, nb - 1]; trusted without looking at the
  // thresholds when at least `tolerance` inside its bucket (V2Plan::guess_tolerance).
  K lo = 0, scale = 0, tolerance = 0;
  // v1 first guess: guess_table[ordered_key(x) >> (bits - v1_guess_bits<K>())], and the same
  // table widened to 32 bits for vector gathers.
  const std::int16_t* guess_table = nullptr;
  const std::int32_t* guess_table32 = nullptr;
};

// Per-exponent 64-bit bins that float32 kernels add into (kFastCopies copies, so that
// neighbouring values of one exponent do not wait on each other); folded into the 128-bit
// ExactBins before any of them can overflow.
struct FastExactBinsF32 {
  static constexpr int kCopies = 4;
  static constexpr std::uint32_t kFoldEvery = 1u << 16;  // adds; squares stay below 2^64
  std::int64_t sum[kCopies][256] = {};
  std::uint64_t sumsq[kCopies][256] = {};
  std::uint32_t pending = 0;  // values added since the last fold (0: every bin is zero)
};

template <class K> struct V1Acc {
  RangeAcc<K> range;
  ExactBins<K> sums;
  FastExactBinsF32 fast;  // used by float32 kernels only
};

// Moves acc.fast into acc.sums (defined once, outside the per-ISA kernel builds).
void fold_fast_bins(V1Acc<float>& acc);

struct KernelTable {
  const char* isa;
  void (*range_f32)(const float*, std::size_t, RangeAcc<float>&);
  void (*range_f64)(const double*, std::size_t, RangeAcc<double>&);
  void (*count_v2_f32)(const float*, std::size_t, const CountArgs<float>&, std::uint64_t*);
  void (*count_v2_f64)(const double*, std::size_t, const CountArgs<double>&, std::uint64_t*);
  void (*v1_f32)(const float*, std::size_t, const CountArgs<float>&, std::uint64_t*, V1Acc<float>&);
  void (*v1_f64)(const double*, std::size_t, const CountArgs<double>&, std::uint64_t*, V1Acc<double>&);
  // Gather n elements of `dtype` at `p` (byte stride `stride`) into `out`, exactly converted.
  void (*to_f32)(DType dtype, const char* p, std::int64_t stride, std::size_t n, float* out);
  void (*to_f64)(DType dtype, const char* p, std::int64_t stride, std::size_t n, double* out);
  // The raw-pattern path (core/patterns.hpp): adds one to a counter of each element's bit
  // pattern. 16-bit elements count into kPatternCopies16 copies of 2^16 counters, 8-bit ones into
  // kPatternCopies8 copies of 2^8 (copy c starts at counts + c * 2^bits); the caller sums the
  // copies and keeps every 32-bit counter below overflow.
  void (*patterns16)(const std::uint16_t* x, std::size_t n, std::uint32_t* counts);
  void (*patterns8)(const std::uint8_t* x, std::size_t n, std::uint32_t* counts);
  // Reads n bytes as fast as this instruction set can (an exclusive-or of all of them, so that
  // the reads cannot be left out): the read ceiling the benchmarks compare the kernels with.
  std::uint64_t (*read_bytes)(const char* p, std::size_t n);
};

// Counter copies of the pattern kernels: consecutive elements count into different copies, so
// that a run of equal values does not wait on one memory cell.
constexpr int kPatternCopies16 = 2;
constexpr int kPatternCopies8 = 4;

namespace baseline { const KernelTable& kernels(); }
namespace avx2 { const KernelTable& kernels(); }
namespace avx512 { const KernelTable& kernels(); }

// The best table this CPU supports (or the one HISTGPU_CPU_ISA names).
const KernelTable& best_kernels();

}  // namespace histgpu::cpu
