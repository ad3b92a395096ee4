// The Python face of core's vocabulary: views, range statistics and results, bound once as
// small classes in histgpu._cpu. histgpu._cuda imports histgpu._cpu first and uses the same
// registered types, so every engine takes and returns the same Python classes.
#pragma once
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/histogram.hpp"

namespace histgpu::bindings {

namespace py = pybind11;
using Shape = std::vector<std::int64_t>;

inline StridedView make_view(std::uintptr_t ptr, int dtype, const Shape& shape, const Shape& strides,
                             std::uint64_t multiplicity) {
  if (!valid_dtype(dtype)) throw std::invalid_argument("histgpu: unknown dtype code " + std::to_string(dtype));
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

template <class T> py::array_t<T> to_numpy(const std::vector<T>& v) {
  py::array_t<T> a(static_cast<py::ssize_t>(v.size()));
  std::copy(v.begin(), v.end(), a.mutable_data());
  return a;
}

// Registers View, RangeStats, V2Result, V1Result and V1Partial in `m`.
inline void bind_types(py::module_& m) {
  py::class_<StridedView>(m, "View", "A strided view of memory an engine reads (byte strides).")
      .def(py::init(&make_view), py::arg("ptr"), py::arg("dtype"), py::arg("shape"), py::arg("strides"),
           py::arg("multiplicity") = 1)
      .def_property_readonly("ptr", [](const StridedView& v) { return reinterpret_cast<std::uintptr_t>(v.base); })
      .def_property_readonly("dtype", [](const StridedView& v) { return static_cast<int>(v.dtype); })
      .def_property_readonly("shape", [](const StridedView& v) { return Shape(v.shape, v.shape + v.ndim); })
      .def_property_readonly("strides", [](const StridedView& v) { return Shape(v.strides, v.strides + v.ndim); })
      .def_readonly("multiplicity", &StridedView::multiplicity)
      .def_property_readonly("size", &StridedView::size, "Distinct elements addressed (multiplicity excluded).");

  py::class_<RangeStats>(m, "RangeStats", "Finite min/max and how many values of each kind a view holds.")
      .def(py::init([](double mn, double mx, std::uint64_t num, std::uint64_t nan, std::uint64_t posinf,
                       std::uint64_t neginf) { return RangeStats{mn, mx, num, nan, posinf, neginf}; }),
           py::arg("min"), py::arg("max"), py::arg("num"), py::arg("nan") = 0, py::arg("posinf") = 0,
           py::arg("neginf") = 0)
      .def_readonly("min", &RangeStats::min)
      .def_readonly("max", &RangeStats::max)
      .def_readonly("num", &RangeStats::num)
      .def_readonly("nan", &RangeStats::nan)
      .def_readonly("posinf", &RangeStats::posinf)
      .def_readonly("neginf", &RangeStats::neginf)
      .def("__repr__", [](const RangeStats& s) {
        return "RangeStats(min=" + std::to_string(s.min) + ", max=" + std::to_string(s.max) +
               ", num=" + std::to_string(s.num) + ", nan=" + std::to_string(s.nan) +
               ", posinf=" + std::to_string(s.posinf) + ", neginf=" + std::to_string(s.neginf) + ")";
      });

  py::class_<V2Result>(m, "V2Result", "A v2 histogram: k + 1 edges, k counts and the range statistics.")
      .def_readonly("k", &V2Result::k)
      .def_property_readonly("edges", [](const V2Result& r) { return to_numpy(r.edges); }, "float64 [k + 1] (a copy)")
      .def_property_readonly("counts", [](const V2Result& r) { return to_numpy(r.counts); }, "uint64 [k] (a copy)")
      .def_readonly("stats", &V2Result::stats);

  py::class_<V1Result>(m, "V1Result", "TensorFlow's v1 histogram content: counts over its default limits.")
      .def_property_readonly("counts", [](const V1Result& r) { return to_numpy(r.counts); }, "uint64 (a copy)")
      .def_readonly("stats", &V1Result::stats)
      .def_readonly("sum", &V1Result::sum)
      .def_readonly("sum_squares", &V1Result::sum_squares);

  py::class_<V1Partial>(m, "V1Partial", "A shard's v1 content whose parts add up exactly across shards.")
      .def_property_readonly("counts", [](const V1Partial& r) { return to_numpy(r.counts); }, "uint64 (a copy)")
      .def_readonly("stats", &V1Partial::stats)
      .def_property_readonly("sum_digits", [](const V1Partial& r) { return to_numpy(r.sum_digits); })
      .def_property_readonly("sumsq_digits", [](const V1Partial& r) { return to_numpy(r.sumsq_digits); });
}

}  // namespace histgpu::bindings
