// Exact conversion of every accepted dtype to the kernel float type, as the CPU engine does it
// (csrc/cpu/kernels.cpp: to_f32 / to_f64). Host-and-device code: the host build of these
// functions is checked against numpy/ml_dtypes by tests/cuda/test_build.py, so the device
// build, compiled from the same source, converts the same way.
#pragma once
#include <cstdint>

#include "core/ordered.hpp"
#include "core/types.hpp"

namespace histgpu::cuda {

// Storage type and kernel type of each dtype.
template <DType D> struct Src;
#define HISTGPU_SRC(D, RAW, K)   \
  template <> struct Src<D> {    \
    using Raw = RAW;             \
    using Kernel = K;            \
  };
HISTGPU_SRC(DType::Bool, std::uint8_t, float)
HISTGPU_SRC(DType::Int8, std::int8_t, float)
HISTGPU_SRC(DType::UInt8, std::uint8_t, float)
HISTGPU_SRC(DType::Int16, std::int16_t, float)
HISTGPU_SRC(DType::UInt16, std::uint16_t, float)
HISTGPU_SRC(DType::Int32, std::int32_t, double)
HISTGPU_SRC(DType::UInt32, std::uint32_t, double)
HISTGPU_SRC(DType::Int64, std::int64_t, double)
HISTGPU_SRC(DType::UInt64, std::uint64_t, double)
HISTGPU_SRC(DType::Float16, std::uint16_t, float)
HISTGPU_SRC(DType::BFloat16, std::uint16_t, float)
HISTGPU_SRC(DType::Float32, float, float)
HISTGPU_SRC(DType::Float64, double, double)
HISTGPU_SRC(DType::Float8E4M3FN, std::uint8_t, float)
HISTGPU_SRC(DType::Float8E5M2, std::uint8_t, float)
#undef HISTGPU_SRC

HISTGPU_HD float quiet_nan_f32() { return from_bits<float>(0x7fc00000u); }
HISTGPU_HD float inf_f32(bool neg) { return from_bits<float>(neg ? 0xff800000u : 0x7f800000u); }

// A small IEEE-like float (sign, `EB` exponent bits, `MB` mantissa bits) to float32, exactly.
// kInf: the top exponent holds infinities and NaNs (IEEE style); otherwise only the all-ones
// pattern is NaN (the "fn" formats).
template <int EB, int MB, bool kInf> HISTGPU_HD float decode_small(std::uint32_t b) {
  constexpr int bias = (1 << (EB - 1)) - 1;
  constexpr std::uint32_t emax = (1u << EB) - 1;
  const std::uint32_t e = (b >> MB) & emax;
  const std::uint32_t m = b & ((1u << MB) - 1);
  const std::uint32_t sign = ((b >> (EB + MB)) & 1u) << 31;
  if (kInf && e == emax) return m ? quiet_nan_f32() : inf_f32(sign != 0);
  if (!kInf && e == emax && m == (1u << MB) - 1) return quiet_nan_f32();
  if (e == 0) {
    // m * 2^(1 - bias - MB): m has at most MB bits, so both steps are exact.
    const float v = static_cast<float>(m) * from_bits<float>(static_cast<std::uint32_t>(127 + 1 - bias - MB) << 23);
    return from_bits<float>(bits_of(v) | sign);
  }
  return from_bits<float>(sign | ((e - bias + 127) << 23) | (m << (23 - MB)));
}

template <DType D> HISTGPU_HD typename Src<D>::Kernel convert(typename Src<D>::Raw r) {
  using K = typename Src<D>::Kernel;
  if constexpr (D == DType::Bool) {
    return r ? 1.0f : 0.0f;
  } else if constexpr (D == DType::Float16) {
    return decode_small<5, 10, true>(r);
  } else if constexpr (D == DType::BFloat16) {
    return from_bits<float>(static_cast<std::uint32_t>(r) << 16);
  } else if constexpr (D == DType::Float8E4M3FN) {
    return decode_small<4, 3, false>(r);
  } else if constexpr (D == DType::Float8E5M2) {
    return decode_small<5, 2, true>(r);
  } else {
    // Integers convert exactly, or (64-bit integers to float64) round to nearest even, as
    // static_cast does on the host and __ll2double_rn / __ull2double_rn on the device.
    return static_cast<K>(r);
  }
}

}  // namespace histgpu::cuda
