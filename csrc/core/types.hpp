// Shared vocabulary of every histgpu engine: strided views and range statistics (the dtypes
// are in core/dtypes.hpp).
#pragma once
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>

#include "core/dtypes.hpp"

namespace histgpu {

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
