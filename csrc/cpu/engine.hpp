// The CPU engine: chunks of a strided view handed out to pooled threads (cpu/pool.hpp), private
// counters per thread merged at the end.
#pragma once
#include <string>

#include "core/histogram.hpp"
#include "cpu/kernels.hpp"

namespace histgpu::cpu {

class CpuEngine final : public Engine {
 public:
  CpuEngine(int num_threads, const KernelTable& kernels) : threads_(num_threads), k_(kernels) {}
  // num_threads >= 1; isa: "baseline", "avx2", "avx512", or "" for the best this CPU runs.
  CpuEngine(int num_threads, const std::string& isa);
  RangeStats range(const StridedView& view) override;
  std::vector<std::uint64_t> count_v2(const StridedView& view, const V2Plan& plan,
                                      bool has_nonfinite, RangeStats* observed = nullptr) override;
  V1Raw v1(const StridedView& view) override;
  bool count_patterns(const StridedView& view, std::vector<std::uint64_t>& counts) override;
  // Small tensors are handed out whole to the threads (one thread per tensor at a time), large
  // ones are split across all threads one after the other.
  std::vector<V2Result> v2_many(const std::vector<BatchItem>& items) override;
  // v1 of many views the same way (results identical to one histogram_v1 call per view).
  std::vector<V1Result> v1_many(const std::vector<StridedView>& views);

  // Reads every byte of a contiguous view once, with the threads and chunks every pass uses:
  // the read ceiling of the benchmarks (returns an exclusive-or of the data).
  std::uint64_t read_all(const StridedView& view);

  // Fewest elements of a 16-bit view that take the raw-pattern path (below, the 2^16 counters
  // cost more than they save; 8-bit views always take it). 0: always; a negative value: never
  // (the tests compare both paths).
  static constexpr std::int64_t kPatternMin16 = std::int64_t(1) << 16;
  void set_pattern_min16(std::int64_t n) { pattern_min16_ = n; }
  std::int64_t pattern_min16() const { return pattern_min16_; }
  int threads() const { return threads_; }
  const KernelTable& kernels() const { return k_; }

 private:
  int threads_;
  const KernelTable& k_;
  std::int64_t pattern_min16_ = kPatternMin16;
};

// Kernel table by name ("baseline", "avx2", "avx512"); empty name: the best this CPU runs.
const KernelTable& kernels_named(const std::string& isa);
std::vector<std::string> supported_isas();

}  // namespace histgpu::cpu
