// Shared vocabulary of every histgpu engine: dtypes, strided views, results.
#pragma once
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>

namespace histgpu {

// Element types histgpu accepts. Codes are shared with the Python layer (histgpu/_input.py).
enum class DType : int {
  Bool = 0, Int8, UInt8, Int16, UInt16, Int32, UInt32, Int64, UInt64,
  Float16, BFloat16, Float32, Float64, Float8E4M3FN, Float8E5M2,
  Count_
};

// The float type a dtype is counted in. Every value of the dtype converts to it exactly
// (or, for 64-bit integers, exactly as TensorFlow's cast to float64 rounds it).
enum class KernelType { F32, F64 };

inline KernelType kernel_type(DType t) {
  switch (t) {
    case DType::Int32: case DType::UInt32: case DType::Int64: case DType::UInt64:
    case DType::Float64:
      return KernelType::F64;
    default:
      return KernelType::F32;
  }
}

inline std::size_t dtype_size(DType t) {
  switch (t) {
    case DType::Bool: case DType::Int8: case DType::UInt8:
    case DType::Float8E4M3FN: case DType::Float8E5M2: return 1;
    case DType::Int16: case DType::UInt16: case DType::Float16: case DType::BFloat16: return 2;
    case DType::Int32: case DType::UInt32: case DType::Float32: return 4;
    case DType::Int64: case DType::UInt64: case DType::Float64: return 8;
    default: throw std::invalid_argument("histgpu: unknown dtype code");
  }
}

constexpr int kMaxDims = 32;

// A strided N-d view of memory. Strides are in bytes and may be any sign; dimensions of
// stride 0 are folded into `multiplicity` by the Python layer, so every element addressed
// here is distinct and counted `multiplicity` times.
struct StridedView {
  const char* base = nullptr;
  DType dtype = DType::Float32;
  int ndim = 0;
  std::int64_t shape[kMaxDims] = {};
  std::int64_t strides[kMaxDims] = {};
  std::uint64_t multiplicity = 1;

  std::uint64_t size() const {
    std::uint64_t n = 1;
    for (int d = 0; d < ndim; ++d) n *= static_cast<std::uint64_t>(shape[d]);
    return n;
  }
};

// Range pass output: min/max over finite values, and how many values of each kind were seen.
// Counts here are of distinct addressed elements (before multiplicity).
struct RangeStats {
  double min = 0.0;
  double max = 0.0;
  std::uint64_t num = 0;  // finite values
  std::uint64_t nan = 0;
  std::uint64_t posinf = 0;
  std::uint64_t neginf = 0;
  std::uint64_t nonfinite() const { return nan + posinf + neginf; }
};

}  // namespace histgpu
