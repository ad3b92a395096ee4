// Run-time choice of the kernel build for this CPU.
#include <stdexcept>
#include <string>
#include <vector>

#include "cpu/engine.hpp"

namespace histgpu::cpu {

namespace {
bool cpu_has_avx512() {
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
         __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl");
}
bool cpu_has_avx2() {
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
         __builtin_cpu_supports("f16c") && __builtin_cpu_supports("bmi2");
}
}  // namespace

std::vector<std::string> supported_isas() {
  std::vector<std::string> v{"baseline"};
  if (cpu_has_avx2()) v.push_back("avx2");
  if (cpu_has_avx512()) v.push_back("avx512");
  return v;
}

const KernelTable& best_kernels() {
  if (cpu_has_avx512()) return avx512::kernels();
  if (cpu_has_avx2()) return avx2::kernels();
  return baseline::kernels();
}

const KernelTable& kernels_named(const std::string& isa) {
  if (isa.empty()) return best_kernels();
  if (isa == "baseline") return baseline::kernels();
  if (isa == "avx2" && cpu_has_avx2()) return avx2::kernels();
  if (isa == "avx512" && cpu_has_avx512()) return avx512::kernels();
  throw std::invalid_argument("histgpu: instruction set '" + isa + "' is not available on this CPU");
}

}  // namespace histgpu::cpu

namespace histgpu::cpu {

CpuEngine::CpuEngine(int num_threads, const std::string& isa) : CpuEngine(num_threads, kernels_named(isa)) {
  if (num_threads < 1) throw std::invalid_argument("histgpu: num_threads must be at least 1");
}

}  // namespace histgpu::cpu
