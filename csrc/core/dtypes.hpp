// The one table of element types histgpu reads. Everything else derives from it: the DType
// enum and its codes, item sizes, the float type each is counted in, exact conversions (the
// same source for the CPU and the CUDA kernels), and the numpy/torch/DLPack names the Python
// layer reads from the compiled module (histgpu._dtypes).
#pragma once
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <type_traits>

#include "core/hd.hpp"
#include "core/ordered.hpp"

namespace histgpu {

// How a stored element becomes a value (see convert() below).
enum class Decode { Boolean, Integer, Native, Half, BFloat16, E4M3FN, E5M2 };

// X(Name, code, name, Storage, Kernel, Decode, dlpack_code, dlpack_bits)
//   code:    shared with the Python layer (never renumber);
//   name:    numpy / ml_dtypes / torch name;
//   Storage: the bytes as an integer or native float;
//   Kernel:  the float type it is counted in: every value converts to it exactly, except
//            64-bit integers, which round to float64 as TensorFlow's cast does;
//   dlpack:  DLDataType code and bits (kDLInt 0, kDLUInt 1, kDLFloat 2, kDLBfloat 4,
//            kDLBool 6, kDLFloat8_e4m3fn 10, kDLFloat8_e5m2 12).
#define HISTGPU_DTYPE_TABLE(X)                                                   \
  X(Bool, 0, "bool", std::uint8_t, float, Boolean, 6, 8)                         \
  X(Int8, 1, "int8", std::int8_t, float, Integer, 0, 8)                          \
  X(UInt8, 2, "uint8", std::uint8_t, float, Integer, 1, 8)                       \
  X(Int16, 3, "int16", std::int16_t, float, Integer, 0, 16)                      \
  X(UInt16, 4, "uint16", std::uint16_t, float, Integer, 1, 16)                   \
  X(Int32, 5, "int32", std::int32_t, double, Integer, 0, 32)                     \
  X(UInt32, 6, "uint32", std::uint32_t, double, Integer, 1, 32)                  \
  X(Int64, 7, "int64", std::int64_t, double, Integer, 0, 64)                     \
  X(UInt64, 8, "uint64", std::uint64_t, double, Integer, 1, 64)                  \
  X(Float16, 9, "float16", std::uint16_t, float, Half, 2, 16)                    \
  X(BFloat16, 10, "bfloat16", std::uint16_t, float, BFloat16, 4, 16)             \
  X(Float32, 11, "float32", float, float, Native, 2, 32)                         \
  X(Float64, 12, "float64", double, double, Native, 2, 64)                       \
  X(Float8E4M3FN, 13, "float8_e4m3fn", std::uint8_t, float, E4M3FN, 10, 8)       \
  X(Float8E5M2, 14, "float8_e5m2", std::uint8_t, float, E5M2, 12, 8)

enum class DType : int {
#define HISTGPU_X(N, code, ...) N = code,
  HISTGPU_DTYPE_TABLE(HISTGPU_X)
#undef HISTGPU_X
  Count_
};

template <DType D> struct DTypeTraits;
#define HISTGPU_X(N, code, NAME, S, K, DEC, DLC, DLB) \
  template <> struct DTypeTraits<DType::N> {          \
    using Storage = S;                                \
    using Kernel = K;                                 \
    static constexpr Decode decode = Decode::DEC;     \
    static constexpr const char* name = NAME;         \
    static constexpr int dlpack_code = DLC;           \
    static constexpr int dlpack_bits = DLB;           \
  };
HISTGPU_DTYPE_TABLE(HISTGPU_X)
#undef HISTGPU_X

// The float type a dtype is counted in.
enum class KernelType { F32, F64 };

inline bool valid_dtype(int code) { return code >= 0 && code < static_cast<int>(DType::Count_); }

// Calls f(std::integral_constant<DType, D>{}) for the run-time dtype t.
template <class F> decltype(auto) visit_dtype(DType t, F&& f) {
  switch (t) {
#define HISTGPU_X(N, ...) \
  case DType::N: return f(std::integral_constant<DType, DType::N>{});
    HISTGPU_DTYPE_TABLE(HISTGPU_X)
#undef HISTGPU_X
    default: throw std::invalid_argument("histgpu: unknown dtype code");
  }
}

// Bytes per element (0 for an invalid code: callers check codes with valid_dtype first).
HISTGPU_HD std::size_t dtype_size(DType t) {
  switch (t) {
#define HISTGPU_X(N, code, NAME, S, ...) \
  case DType::N: return sizeof(S);
    HISTGPU_DTYPE_TABLE(HISTGPU_X)
#undef HISTGPU_X
    default: return 0;
  }
}

HISTGPU_HD KernelType kernel_type(DType t) {
  switch (t) {
#define HISTGPU_X(N, code, NAME, S, K, ...) \
  case DType::N: return std::is_same_v<K, double> ? KernelType::F64 : KernelType::F32;
    HISTGPU_DTYPE_TABLE(HISTGPU_X)
#undef HISTGPU_X
    default: return KernelType::F32;
  }
}

inline const char* dtype_name(DType t) {
  return visit_dtype(t, [](auto d) { return DTypeTraits<decltype(d)::value>::name; });
}

// ---- exact conversion to the kernel type (host and device) ----------------------------------

// A small IEEE-like float (sign, EB exponent bits, MB mantissa bits) to float32, exactly.
// kInf: the top exponent holds infinities and NaNs (IEEE style); otherwise only the all-ones
// pattern is NaN (the "fn" formats).
template <int EB, int MB, bool kInf> HISTGPU_HD float decode_small_float(std::uint32_t b) {
  constexpr int bias = (1 << (EB - 1)) - 1;
  constexpr std::uint32_t emax = (1u << EB) - 1;
  const std::uint32_t e = (b >> MB) & emax;
  const std::uint32_t m = b & ((1u << MB) - 1);
  const std::uint32_t sign = ((b >> (EB + MB)) & 1u) << 31;
  if (kInf && e == emax) return from_bits<float>(sign | (m ? 0x7fc00000u : 0x7f800000u));
  if (!kInf && e == emax && m == (1u << MB) - 1) return from_bits<float>(sign | 0x7fc00000u);
  if (e == 0) {
    // m * 2^(1 - bias - MB): m has at most MB bits, so both steps are exact.
    const float v = static_cast<float>(m) * from_bits<float>(static_cast<std::uint32_t>(127 + 1 - bias - MB) << 23);
    return from_bits<float>(bits_of(v) | sign);
  }
  return from_bits<float>(sign | ((e - bias + 127) << 23) | (m << (23 - MB)));
}

template <DType D>
HISTGPU_HD typename DTypeTraits<D>::Kernel convert(typename DTypeTraits<D>::Storage r) {
  using T = DTypeTraits<D>;
  using K = typename T::Kernel;
  if constexpr (T::decode == Decode::Boolean) {
    return r ? K(1) : K(0);
  } else if constexpr (T::decode == Decode::Half) {
    return decode_small_float<5, 10, true>(r);
  } else if constexpr (T::decode == Decode::BFloat16) {
    return from_bits<float>(static_cast<std::uint32_t>(r) << 16);
  } else if constexpr (T::decode == Decode::E4M3FN) {
    return decode_small_float<4, 3, false>(r);
  } else if constexpr (T::decode == Decode::E5M2) {
    return decode_small_float<5, 2, true>(r);
  } else {
    // Integers convert exactly, or (64-bit integers to float64) round to nearest even, as
    // static_cast does on the host and __ll2double_rn / __ull2double_rn on the device.
    return static_cast<K>(r);
  }
}

}  // namespace histgpu
