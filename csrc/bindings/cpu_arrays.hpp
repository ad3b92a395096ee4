// The per-call fast path of the CPU engine: plain numpy arrays go straight from Python to the
// engine (their layout normalised in C++: cpu/host_layout.hpp) and results come back as tuples
// of plain values, so that a call on a small tensor costs about what numpy's own reductions do.
// histgpu._api uses these for host arrays; every other input takes the general path through
// histgpu._input, with the same results.
#pragma once
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <sched.h>

#include <cstdlib>
#include <vector>

#include "bindings/types.hpp"
#include "core/fp_env.hpp"
#include "core/histogram.hpp"
#include "cpu/engine.hpp"
#include "cpu/host_layout.hpp"

namespace histgpu::bindings {

// Below this many elements a call runs too briefly for releasing the GIL to be worth its cost.
constexpr std::uint64_t kKeepGilBelow = std::uint64_t(1) << 14;

// The view of a numpy array (an object whose type the caller checked) holding dtype `code`.
inline StridedView array_view(py::handle obj, int code) {
  if (!valid_dtype(code)) throw std::invalid_argument("histgpu: unknown dtype code " + std::to_string(code));
  auto a = py::reinterpret_borrow<py::array>(obj);
  const auto dtype = static_cast<DType>(code);
  if (static_cast<std::size_t>(a.itemsize()) != dtype_size(dtype))
    throw std::invalid_argument("histgpu: the dtype code does not match the array's item size");
  const int nd = static_cast<int>(a.ndim());
  if (nd > kMaxDims) throw std::invalid_argument("histgpu: more than 32 dimensions");
  std::int64_t shape[kMaxDims], strides[kMaxDims];
  for (int d = 0; d < nd; ++d) {
    shape[d] = static_cast<std::int64_t>(a.shape(d));
    strides[d] = static_cast<std::int64_t>(a.strides(d));
  }
  return cpu::host_layout(static_cast<const char*>(a.data()), dtype, nd, shape, strides);
}

// Runs f() with the GIL released, unless the work is too small to be worth it.
template <class F> auto maybe_without_gil(std::uint64_t elements, F&& f) {
  const IeeeArithmetic ieee;  // as every engine call (core/fp_env.hpp)
  if (elements < kKeepGilBelow) return f();
  py::gil_scoped_release nogil;
  return f();
}

// (edges, counts, min, max, num, nan, posinf, neginf): histgpu.Histogram's fields, in order.
inline py::tuple v2_fields(const V2Result& r) {
  const RangeStats& s = r.stats;
  return py::make_tuple(to_numpy(r.edges), to_numpy(r.counts), s.min, s.max, s.num, s.nan, s.posinf, s.neginf);
}

// TensorBoard's [k, 3] float64 tensor of [left edge, right edge, count] rows.
inline py::array_t<double> v2_tensor(const V2Result& r) {
  const auto k = static_cast<py::ssize_t>(r.k);
  py::array_t<double> t({k, py::ssize_t(3)});
  double* out = t.mutable_data();
  for (py::ssize_t i = 0; i < k; ++i) {
    out[3 * i] = r.edges[i];
    out[3 * i + 1] = r.edges[i + 1];
    out[3 * i + 2] = static_cast<double>(r.counts[i]);  // rounds to nearest above 2^53, as numpy's astype
  }
  return t;
}

// (counts, min, max, num, sum, sum_squares, nan, posinf, neginf): histgpu.V1Histogram's fields
// after its limits, in order.
inline py::tuple v1_fields(const V1Result& r) {
  const RangeStats& s = r.stats;
  return py::make_tuple(to_numpy(r.counts), s.min, s.max, s.num, r.sum, r.sum_squares, s.nan, s.posinf, s.neginf);
}

// (HISTGPU_NUM_THREADS or None, HISTGPU_CPU_ISA or "", usable cores or 0): what every call
// needs from the environment, in one step (os.environ and os.sched_getaffinity cost more than
// a whole small histogram).
inline py::tuple process_settings() {
  auto env = [](const char* name) -> py::object {
    const char* v = std::getenv(name);
    if (!v) return py::none();
    PyObject* s = PyUnicode_DecodeFSDefault(v);  // as os.environ decodes it
    if (!s) throw py::error_already_set();
    return py::reinterpret_steal<py::object>(s);
  };
  cpu_set_t set;
  const int cores = sched_getaffinity(0, sizeof set, &set) == 0 ? CPU_COUNT(&set) : 0;
  py::object isa = env("HISTGPU_CPU_ISA");
  return py::make_tuple(env("HISTGPU_NUM_THREADS"), isa.is_none() ? py::str("") : isa, cores);
}

template <class Class> void bind_cpu_arrays(Class& c, py::module_& m) {
  c.def(
       "v2_array",
       [](cpu::CpuEngine& e, py::handle array, int code, std::int64_t k, bool tensor) -> py::object {
         const StridedView v = array_view(array, code);
         const V2Result r = maybe_without_gil(v.size(), [&] { return histogram_v2(e, v, k); });
         if (!tensor) return v2_fields(r);
         const RangeStats& s = r.stats;
         return py::make_tuple(v2_tensor(r), s.nan, s.posinf, s.neginf);
       },
       py::arg("array"), py::arg("code"), py::arg("k"), py::arg("tensor") = false,
       "v2 histogram of a numpy array holding dtype `code`: Histogram's fields as a tuple, or with "
       "tensor=True (TensorBoard's [k, 3] tensor, nan, posinf, neginf).")
      .def(
          "v1_array",
          [](cpu::CpuEngine& e, py::handle array, int code) {
            const StridedView v = array_view(array, code);
            return v1_fields(maybe_without_gil(v.size(), [&] { return histogram_v1(e, v); }));
          },
          py::arg("array"), py::arg("code"), "v1 histogram of a numpy array: V1Histogram's fields after limits.")
      .def(
          "v2_items",
          [](cpu::CpuEngine& e, const py::list& items, const std::vector<int>& codes, const std::vector<std::int64_t>& ks) {
            const std::size_t n = items.size();
            if (codes.size() != n || ks.size() != n)
              throw std::invalid_argument("histgpu: one dtype code and one bucket count per item expected");
            std::vector<BatchItem> batch(n);
            std::uint64_t total = 0;
            for (std::size_t i = 0; i < n; ++i) {
              batch[i].view = codes[i] >= 0 ? array_view(items[i], codes[i]) : items[i].cast<StridedView>();
              batch[i].k = ks[i];
              total += batch[i].view.size();
            }
            const std::vector<V2Result> results = maybe_without_gil(total, [&] { return e.v2_many(batch); });
            py::list out(n);
            for (std::size_t i = 0; i < n; ++i) out[i] = v2_fields(results[i]);
            return out;
          },
          py::arg("items"), py::arg("codes"), py::arg("ks"),
          "v2 histograms of many items in one call (the GIL released once): item i is a numpy array holding "
          "dtype codes[i], or a View where codes[i] < 0. Histogram's fields as tuples, in input order.")
      .def(
          "read_array",
          [](cpu::CpuEngine& e, py::handle array, int code) {
            const StridedView v = array_view(array, code);
            py::gil_scoped_release nogil;
            return e.read_all(v);
          },
          py::arg("array"), py::arg("code"),
          "Reads every byte of a contiguous numpy array once, as a pass of this engine would (the read "
          "ceiling of the benchmarks); returns an exclusive-or of the data.")
      .def_property("pattern_min16", &cpu::CpuEngine::pattern_min16, &cpu::CpuEngine::set_pattern_min16,
                    "Fewest elements of a 16-bit view that take the raw-pattern path (0: always; negative: "
                    "never, for 8-bit views too).");
  m.def("process_settings", &process_settings,
        "(HISTGPU_NUM_THREADS or None, HISTGPU_CPU_ISA or '', usable cores or 0), read in one call.");
}

}  // namespace histgpu::bindings
