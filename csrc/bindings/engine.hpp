// One template registers an engine with Python: every engine (the CPU engine, the CUDA engine,
// the CUDA kernels emulated on the host) gets the same methods, names and arguments. The GIL is
// released while an engine runs.
#pragma once
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <optional>
#include <utility>
#include <vector>

#include "bindings/types.hpp"
#include "core/fp_env.hpp"
#include "core/histogram.hpp"
#include "core/numpy_bins.hpp"

namespace histgpu::bindings {

// A holder's deleter that destroys its object with the GIL released (a destructor that talks to
// a device must never hold up the interpreter).
struct ReleasingGil {
  template <class T> void operator()(T* p) const {
    if (PyGILState_Check()) {
      py::gil_scoped_release nogil;
      delete p;
    } else {
      delete p;
    }
  }
};

template <class E> py::class_<E> bind_engine(py::module_& m, const char* name, const char* doc) {
  py::class_<E> c(m, name, doc);
  c.def(
       "range",
       [](E& e, const StridedView& v) {
         py::gil_scoped_release nogil;
            const IeeeArithmetic ieee;
         return range_of(e, v);
       },
       py::arg("view"), "Finite min/max and value counts, multiplicity included.")
      .def(
          "v2",
          [](E& e, const StridedView& v, std::int64_t k) {
            py::gil_scoped_release nogil;
            const IeeeArithmetic ieee;
            return std::move(e.v2_many({BatchItem{v, k}}).front());
          },
          py::arg("view"), py::arg("k"), "TensorBoard's v2 buckets of the view.")
      .def(
          "v2_shard",
          [](E& e, const StridedView& v, std::int64_t k, double global_min, double global_max,
             std::uint64_t global_num, std::optional<RangeStats> local) {
            py::gil_scoped_release nogil;
            const IeeeArithmetic ieee;
            return histogram_v2_shard(e, v, k, GlobalRange{global_min, global_max, global_num},
                                      local ? &*local : nullptr);
          },
          py::arg("view"), py::arg("k"), py::arg("global_min"), py::arg("global_max"), py::arg("global_num"),
          py::arg("local") = py::none(),
          "A shard's v2 counts against the range of the whole tensor; `local`: the shard's own range() "
          "when known (the shard is then read once, and checked against it).")
      .def(
          "v2_many",
          [](E& e, const std::vector<StridedView>& views, const std::vector<std::int64_t>& ks) {
            if (views.size() != ks.size()) throw std::invalid_argument("histgpu: one bucket count per view expected");
            std::vector<BatchItem> items;
            items.reserve(views.size());
            for (std::size_t i = 0; i < views.size(); ++i) items.push_back(BatchItem{views[i], ks[i]});
            py::gil_scoped_release nogil;
            const IeeeArithmetic ieee;
            return e.v2_many(items);
          },
          py::arg("views"), py::arg("ks"), "v2 histograms of many views, in input order.")
      .def(
          "v1",
          [](E& e, const StridedView& v) {
            py::gil_scoped_release nogil;
            const IeeeArithmetic ieee;
            return histogram_v1(e, v);
          },
          py::arg("view"), "TensorFlow's v1 buckets, range and exact sums, in one read.")
      .def(
          "v1_partial",
          [](E& e, const StridedView& v) {
            py::gil_scoped_release nogil;
            const IeeeArithmetic ieee;
            return histogram_v1_partial(e, v);
          },
          py::arg("view"), "A shard's v1 content with the exact sums as int64 digit arrays.")
      .def(
          "numpy_counts",
          [](E& e, const StridedView& v, const NumpyBins& bins, std::optional<RangeStats> stats) {
            std::vector<std::uint64_t> counts;
            {
              py::gil_scoped_release nogil;
            const IeeeArithmetic ieee;
              counts = numpy_counts(e, v, bins, stats ? *stats : range_of(e, v));
            }
            return to_numpy(counts);
          },
          py::arg("view"), py::arg("bins"), py::arg("stats") = py::none(),
          "numpy.histogram's counts of the view for these bins (core/numpy_bins.hpp); `stats`: the "
          "view's range() when known.");
  return c;
}

}  // namespace histgpu::bindings
