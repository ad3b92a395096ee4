// The raw-pattern path's counting loops (compiled per instruction set; see isa.hpp): one
// increment per element, of the counter its bit pattern indexes. No conversion, no range, no
// threshold: everything else follows from the counts on the host (core/patterns.hpp). Scalar
// on purpose: increments of data-dependent addresses have no faster vector form here (AVX-512
// conflict detection costs more than the stores it would save).
#include "cpu/kernels/isa.hpp"

namespace histgpu::cpu::HISTGPU_ISA {

void patterns16(const std::uint16_t* x, std::size_t n, std::uint32_t* counts) {
  static_assert(kPatternCopies16 == 2, "one loop step per copy");
  std::uint32_t* __restrict c0 = counts;
  std::uint32_t* __restrict c1 = counts + 65536;
  std::size_t i = 0;
  for (; i + 4 <= n; i += 4) {
    if (i % 32 == 0) prefetch_ahead(x + i, 64);
    ++c0[x[i]];
    ++c1[x[i + 1]];
    ++c0[x[i + 2]];
    ++c1[x[i + 3]];
  }
  for (; i < n; ++i) ++c0[x[i]];
}

void patterns8(const std::uint8_t* x, std::size_t n, std::uint32_t* counts) {
  static_assert(kPatternCopies8 == 4, "one loop step per copy");
  std::size_t i = 0;
  for (; i + 4 <= n; i += 4) {
    if (i % 64 == 0) prefetch_ahead(x + i, 64);
    ++counts[x[i]];
    ++counts[256 + x[i + 1]];
    ++counts[512 + x[i + 2]];
    ++counts[768 + x[i + 3]];
  }
  for (; i < n; ++i) ++counts[x[i]];
}

}  // namespace histgpu::cpu::HISTGPU_ISA
