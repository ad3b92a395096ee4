// This instruction set's KernelTable (see isa.hpp).
#include "cpu/kernels/isa.hpp"

#define HISTGPU_STR2(x) #x
#define HISTGPU_STR(x) HISTGPU_STR2(x)

namespace histgpu::cpu::HISTGPU_ISA {

const KernelTable& kernels() {
  static const KernelTable table{
      HISTGPU_STR(HISTGPU_ISA), range_f32, range_f64, count_v2_f32, count_v2_f64, v1_f32, v1_f64, to_f32, to_f64, patterns16, patterns8, read_bytes,
  };
  return table;
}

}  // namespace histgpu::cpu::HISTGPU_ISA
