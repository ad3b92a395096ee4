#include "cpu/host_layout.hpp"

#include <algorithm>
#include <stdexcept>
#include <utility>

namespace histgpu::cpu {

StridedView host_layout(const char* data, DType dtype, int ndim, const std::int64_t* shape,
                        const std::int64_t* strides) {
  if (ndim > kMaxDims) throw std::invalid_argument("histgpu: more than 32 dimensions");
  const auto itemsize = static_cast<std::int64_t>(dtype_size(dtype));
  StridedView v;
  v.dtype = dtype;
  v.ndim = 1;
  for (int d = 0; d < ndim; ++d) {
    if (shape[d] < 0) throw std::invalid_argument("histgpu: negative extent");
    if (shape[d] == 0) {  // no elements: as histgpu._input._view describes them
      v.shape[0] = 0;
      v.strides[0] = itemsize;
      return v;
    }
  }
  std::pair<std::int64_t, std::int64_t> dims[kMaxDims];  // (stride, extent)
  int nd = 0;
  std::uint64_t multiplicity = 1;
  for (int d = 0; d < ndim; ++d) {
    std::int64_t extent = shape[d], stride = strides[d];
    if (extent == 1) continue;
    if (stride == 0) {
      if (__builtin_mul_overflow(multiplicity, static_cast<std::uint64_t>(extent), &multiplicity))
        throw std::overflow_error("histgpu: element count overflows 64 bits");
      continue;
    }
    if (stride < 0) {  // walk it forwards from its lowest address instead
      data += (extent - 1) * stride;
      stride = -stride;
    }
    dims[nd++] = {stride, extent};
  }
  std::sort(dims, dims + nd, [](const auto& a, const auto& b) { return a > b; });  // innermost last
  int merged = 0;
  for (int d = 0; d < nd; ++d) {
    const auto [stride, extent] = dims[d];
    if (merged && dims[merged - 1].first == stride * extent) {
      dims[merged - 1] = {stride, dims[merged - 1].second * extent};
    } else {
      dims[merged++] = dims[d];
    }
  }
  v.base = data;
  v.multiplicity = multiplicity;
  if (merged == 0) {  // a single element (or repeats of one)
    v.shape[0] = 1;
    v.strides[0] = itemsize;
    return v;
  }
  v.ndim = merged;
  for (int d = 0; d < merged; ++d) {
    v.strides[d] = dims[d].first;
    v.shape[d] = dims[d].second;
  }
  return v;
}

}  // namespace histgpu::cpu
