// Turning the Python layer's (pointer, dtype code, shape, strides, multiplicity) into a view,
// and engine results into Python objects. Shared by the CPU and CUDA modules.
#pragma once
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <cstdint>
#include <optional>
#include <tuple>
#include <stdexcept>
#include <vector>

#include "core/histogram.hpp"

namespace histgpu::bindings {

inline StridedView make_view(std::uintptr_t ptr, int dtype, const std::vector<std::int64_t>& shape,
                             const std::vector<std::int64_t>& strides, std::uint64_t multiplicity) {
  if (dtype < 0 || dtype >= static_cast<int>(DType::Count_))
    throw std::invalid_argument("histgpu: unknown dtype code " + std::to_string(dtype));
  if (shape.size() != strides.size()) throw std::invalid_argument("histgpu: shape/strides mismatch");
  if (shape.size() > static_cast<std::size_t>(kMaxDims))
    throw std::invalid_argument("histgpu: more than 32 dimensions");
  StridedView v;
  v.base = reinterpret_cast<const char*>(ptr);
  v.dtype = static_cast<DType>(dtype);
  v.multiplicity = multiplicity;
  if (shape.empty()) {  // a 0-d array is one element
    v.ndim = 1;
    v.shape[0] = 1;
    v.strides[0] = static_cast<std::int64_t>(dtype_size(v.dtype));
    return v;
  }
  v.ndim = static_cast<int>(shape.size());
  for (int d = 0; d < v.ndim; ++d) {
    if (shape[d] < 0) throw std::invalid_argument("histgpu: negative extent");
    v.shape[d] = shape[d];
    v.strides[d] = strides[d];
  }
  return v;
}

namespace py = pybind11;

inline py::tuple stats_tuple(const RangeStats& s) {
  return py::make_tuple(s.min, s.max, s.num, s.nan, s.posinf, s.neginf);
}

// A shard's own range stats when the caller already has them (phase 1 of a sharded histogram,
// as range_stats returned them: counts include the view's repetition), so that counting
// against a global range does not read the shard a third time. None: the engine reads them.
inline std::optional<RangeStats> known_local_stats(const py::object& known, std::uint64_t mult) {
  if (known.is_none()) return std::nullopt;
  const auto t = known.cast<std::tuple<double, double, std::uint64_t, std::uint64_t, std::uint64_t, std::uint64_t>>();
  RangeStats s;
  s.min = std::get<0>(t);
  s.max = std::get<1>(t);
  const std::uint64_t counts[4] = {std::get<2>(t), std::get<3>(t), std::get<4>(t), std::get<5>(t)};
  for (std::uint64_t c : counts)
    if (mult == 0 || c % mult != 0)
      throw std::invalid_argument("histgpu: local stats do not belong to this view (counts are not "
                                  "multiples of its repetition)");
  s.num = counts[0] / mult;
  s.nan = counts[1] / mult;
  s.posinf = counts[2] / mult;
  s.neginf = counts[3] / mult;
  return s;
}

template <class T> py::array_t<T> to_numpy(const std::vector<T>& v) {
  py::array_t<T> a(static_cast<py::ssize_t>(v.size()));
  std::copy(v.begin(), v.end(), a.mutable_data());
  return a;
}

// (edges, counts, stats): what every v2 entry point of every engine returns.
inline py::tuple v2_tuple(const V2Result& r) {
  return py::make_tuple(to_numpy(r.edges), to_numpy(r.counts), stats_tuple(r.stats));
}

}  // namespace histgpu::bindings
