// A strided host array as the engines read it: the C++ twin of histgpu._input.layout(), so that
// a plain numpy array goes from Python to the CPU engine without any Python-side work.
#pragma once
#include <cstdint>

#include "core/types.hpp"

namespace histgpu::cpu {

// The view of an array of `ndim` dimensions (extents `shape`, byte strides `strides`, any
// sign) at `data`, normalised exactly as histgpu._input.layout() does it: extent-1 dimensions
// dropped, stride-0 dimensions folded into the multiplicity, negative strides walked forwards
// from the lowest address, dimensions sorted by stride (innermost last) and merged where they
// tile memory contiguously. An empty array is the one-dimensional view of no elements.
StridedView host_layout(const char* data, DType dtype, int ndim, const std::int64_t* shape,
                        const std::int64_t* strides);

}  // namespace histgpu::cpu
