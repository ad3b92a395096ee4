// histgpu._cpu: thin pybind11 layer over the CPU engine. The GIL is released while counting.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include "bindings/view_args.hpp"
#include "core/crc32c.hpp"
#include "core/histogram.hpp"
#include "cpu/engine.hpp"

namespace py = pybind11;
using namespace histgpu;
using bindings::make_view;
using bindings::stats_tuple;
using bindings::to_numpy;
using bindings::v2_tuple;
using Shape = std::vector<std::int64_t>;

PYBIND11_MODULE(_cpu, m) {
  m.doc() = "histgpu CPU engine (internal; use the histgpu package)";

  m.def("range_stats",
        [](std::uintptr_t ptr, int dtype, const Shape& shape, const Shape& strides,
           std::uint64_t mult, int threads, const std::string& isa) {
          const StridedView v = make_view(ptr, dtype, shape, strides, mult);
          cpu::CpuEngine engine(threads, cpu::kernels_named(isa));
          RangeStats s;
          {
            py::gil_scoped_release nogil;
            s = engine.range(v);
          }
          return stats_tuple(repeat_stats(s, mult));
        },
        "Finite min/max and value counts: (min, max, num, nan, posinf, neginf).");

  m.def("histogram_v2",
        [](std::uintptr_t ptr, int dtype, const Shape& shape, const Shape& strides,
           std::uint64_t mult, std::int64_t k, int threads, const std::string& isa) {
          const StridedView v = make_view(ptr, dtype, shape, strides, mult);
          cpu::CpuEngine engine(threads, cpu::kernels_named(isa));
          V2Result r;
          {
            py::gil_scoped_release nogil;
            r = histogram_v2(engine, v, k);
          }
          return v2_tuple(r);
        },
        "TensorBoard v2 buckets: (edges, counts, stats).");

  m.def("histogram_v2_in_range",
        [](std::uintptr_t ptr, int dtype, const Shape& shape, const Shape& strides,
           std::uint64_t mult, std::int64_t k, double gmin, double gmax, std::uint64_t gnum,
           const py::object& local_stats, int threads, const std::string& isa) {
          const StridedView v = make_view(ptr, dtype, shape, strides, mult);
          const auto known = bindings::known_local_stats(local_stats, mult);
          cpu::CpuEngine engine(threads, cpu::kernels_named(isa));
          V2Result r;
          {
            py::gil_scoped_release nogil;
            const RangeStats local = known ? *known : engine.range(v);
            r = histogram_v2_in_range(engine, v, k, local, gmin, gmax, gnum);
          }
          return v2_tuple(r);
        },
        "v2 buckets of a shard against a global range: (edges, counts, local stats). "
        "local_stats: the shard's range_stats() if known, else None.");

  m.def("histogram_v1",
        [](std::uintptr_t ptr, int dtype, const Shape& shape, const Shape& strides,
           std::uint64_t mult, int threads, const std::string& isa) {
          const StridedView v = make_view(ptr, dtype, shape, strides, mult);
          cpu::CpuEngine engine(threads, cpu::kernels_named(isa));
          V1Result r;
          {
            py::gil_scoped_release nogil;
            r = histogram_v1(engine, v);
          }
          return py::make_tuple(to_numpy(r.counts), stats_tuple(r.stats), r.sum, r.sum_squares);
        },
        "TensorFlow v1 buckets: (counts, stats, sum, sum_squares).");

  m.def("histogram_v1_partial",
        [](std::uintptr_t ptr, int dtype, const Shape& shape, const Shape& strides,
           std::uint64_t mult, int threads, const std::string& isa) {
          const StridedView v = make_view(ptr, dtype, shape, strides, mult);
          cpu::CpuEngine engine(threads, cpu::kernels_named(isa));
          V1Partial r;
          {
            py::gil_scoped_release nogil;
            r = histogram_v1_partial(engine, v);
          }
          return py::make_tuple(to_numpy(r.counts), stats_tuple(r.stats), to_numpy(r.sum_digits),
                                to_numpy(r.sumsq_digits));
        },
        "A shard's v1 content with exact sums as int64 digit arrays that add up under a SUM "
        "all-reduce: (counts, stats, sum_digits, sum_squares_digits).");

  m.def("round_digit_sums",
        [](py::array_t<std::int64_t, py::array::c_style | py::array::forcecast> digits) {
          if (digits.ndim() != 1 || digits.shape(0) != BigFixed::kDigits)
            throw std::invalid_argument("histgpu: expected " + std::to_string(BigFixed::kDigits) +
                                        " exact-sum digits");
          return BigFixed::from_digit_sums(digits.data()).to_double();
        },
        "The float64 nearest to the exact value that summed digit arrays stand for.");

  m.def("crc32c",
        [](const py::bytes& data) {
          char* p = nullptr;
          Py_ssize_t n = 0;
          if (PyBytes_AsStringAndSize(data.ptr(), &p, &n) != 0) throw py::error_already_set();
          std::uint32_t crc;
          {
            py::gil_scoped_release nogil;
            crc = crc32c(p, static_cast<std::size_t>(n));
          }
          return crc;
        },
        "CRC-32C of bytes (TensorFlow's record checksum).");

  m.def("v1_limits", [] { return to_numpy(v1_default_limits()); },
        "TensorFlow's default v1 bucket limits.");
  m.def("active_isa", [](const std::string& isa) { return std::string(cpu::kernels_named(isa).isa); },
        py::arg("isa") = "");
  m.def("supported_isas", &cpu::supported_isas);
  m.attr("max_buckets") = kMaxBuckets;
}
