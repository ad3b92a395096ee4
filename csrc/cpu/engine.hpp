// The CPU engine: threads over chunks of a strided view, private counters merged at the end.
#pragma once
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

 private:
  int threads_;
  const KernelTable& k_;
};

// Kernel table by name ("baseline", "avx2", "avx512"); empty name: the best this CPU runs.
const KernelTable& kernels_named(const std::string& isa);
std::vector<std::string> supported_isas();

}  // namespace histgpu::cpu
