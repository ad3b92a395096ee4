// histgpu._cuda: thin pybind11 layer over the CUDA engine, mirroring histgpu._cpu (same
// function names and arguments, with `stream, device` in place of `threads, isa`).
// It imports and answers device_available() == False on machines without a driver or GPU:
// the CUDA runtime is linked statically and loads the driver only when first asked.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstring>

#include "bindings/view_args.hpp"
#include "core/histogram.hpp"
#include "cuda/convert.cuh"
#include "cuda/engine.hpp"
#include "cuda/launch.hpp"
#include "cuda/v2_plan.cuh"

namespace py = pybind11;
using namespace histgpu;
using bindings::make_view;
using bindings::stats_tuple;
using bindings::to_numpy;
using bindings::v2_tuple;
using Shape = std::vector<std::int64_t>;

namespace {

void* as_stream(std::uintptr_t s) { return reinterpret_cast<void*>(s); }

std::vector<cuda::BatchItem> batch_items(const py::list& views, const std::vector<std::int64_t>& ks) {
  if (static_cast<std::size_t>(py::len(views)) != ks.size())
    throw std::invalid_argument("histgpu: one bucket count per tensor expected");
  std::vector<cuda::BatchItem> items;
  items.reserve(ks.size());
  std::size_t i = 0;
  for (const auto& h : views) {
    const auto t = h.cast<py::tuple>();
    if (t.size() != 5) throw std::invalid_argument("histgpu: views are (ptr, dtype, shape, strides, multiplicity)");
    cuda::BatchItem it;
    it.view = make_view(t[0].cast<std::uintptr_t>(), t[1].cast<int>(), t[2].cast<Shape>(), t[3].cast<Shape>(),
                        t[4].cast<std::uint64_t>());
    it.k = ks[i++];
    items.push_back(it);
  }
  return items;
}

// Host build of the device planner (v2_plan.cuh) against core's plan, for the tests.
template <class K> py::tuple check_planner_impl(double mn, double mx, std::int64_t k) {
  using Key = typename FloatBits<K>::UInt;
  const V2Plan plan = V2Plan::make(sizeof(K) == 4 ? DType::Float32 : DType::Float64, mn, mx, k);
  const std::vector<K>& host = [&]() -> const std::vector<K>& {
    if constexpr (sizeof(K) == 4) return plan.thresholds_f32;
    else return plan.thresholds_f64;
  }();
  const cuda::SpecHD spec = cuda::make_spec(mn, mx, k);
  const Key klo = ordered_key(static_cast<K>(mn)), khi = ordered_key(static_cast<K>(mx));
  const std::int64_t top = cuda::key_bucket<K>(spec, khi);
  std::int64_t mismatches = 0;
  for (std::int64_t j = 1; j < k; ++j) {
    const K t = cuda::plan_threshold<K>(spec, klo, khi, top, j);
    if (std::memcmp(&t, &host[static_cast<std::size_t>(j)], sizeof t) != 0) ++mismatches;
  }
  const bool same_spec = spec.width == plan.spec.width && spec.halved == plan.spec.halved;
  return py::make_tuple(mismatches, same_spec);
}

template <DType D> py::array_t<double> convert_all(const py::bytes& raw) {
  using Raw = typename cuda::Src<D>::Raw;
  const std::string s = raw;
  const std::size_t n = s.size() / sizeof(Raw);
  py::array_t<double> out(static_cast<py::ssize_t>(n));
  for (std::size_t i = 0; i < n; ++i) {
    Raw r;
    std::memcpy(&r, s.data() + i * sizeof(Raw), sizeof r);
    out.mutable_data()[i] = static_cast<double>(cuda::convert<D>(r));
  }
  return out;
}

py::array_t<double> host_convert(int dtype, const py::bytes& raw) {
  switch (static_cast<DType>(dtype)) {
#define HISTGPU_CASE(D) \
  case D: return convert_all<D>(raw);
    HISTGPU_CASE(DType::Bool)
    HISTGPU_CASE(DType::Int8)
    HISTGPU_CASE(DType::UInt8)
    HISTGPU_CASE(DType::Int16)
    HISTGPU_CASE(DType::UInt16)
    HISTGPU_CASE(DType::Int32)
    HISTGPU_CASE(DType::UInt32)
    HISTGPU_CASE(DType::Int64)
    HISTGPU_CASE(DType::UInt64)
    HISTGPU_CASE(DType::Float16)
    HISTGPU_CASE(DType::BFloat16)
    HISTGPU_CASE(DType::Float32)
    HISTGPU_CASE(DType::Float64)
    HISTGPU_CASE(DType::Float8E4M3FN)
    HISTGPU_CASE(DType::Float8E5M2)
#undef HISTGPU_CASE
    default: throw std::invalid_argument("histgpu: unknown dtype code");
  }
}

}  // namespace

PYBIND11_MODULE(_cuda, m) {
  m.doc() = "histgpu CUDA engine (internal; use the histgpu package)";

  m.def("device_available", &cuda::device_available,
        "True when a CUDA driver and at least one device are usable (never raises).");
  m.def("device_count", &cuda::device_count);
  m.def("pointer_device", [](std::uintptr_t p) { return cuda::pointer_device(p); },
        "The CUDA device holding this address, or -1 for host/unknown memory.");
  m.def("info", [] {
    py::dict d;
    const bool ok = cuda::device_available();
    d["device_available"] = ok;
    d["device_count"] = cuda::device_count();
    d["reason"] = ok ? std::string() : cuda::unavailable_reason();
    d["runtime_version"] = cuda::runtime_version();
    d["driver_version"] = cuda::driver_version();
    d["architectures"] = cuda::compiled_architectures();
    py::list devs;
    for (const auto& dd : cuda::describe_devices()) {
      py::dict x;
      x["id"] = dd.id;
      x["name"] = dd.name;
      x["compute_capability"] = py::make_tuple(dd.major, dd.minor);
      x["multiprocessors"] = dd.multiprocessors;
      x["memory"] = dd.memory;
      devs.append(x);
    }
    d["devices"] = devs;
    return d;
  });

  m.def("range_stats",
        [](std::uintptr_t ptr, int dtype, const Shape& shape, const Shape& strides, std::uint64_t mult,
           std::uintptr_t stream, int device) {
          const StridedView v = make_view(ptr, dtype, shape, strides, mult);
          cuda::CudaEngine engine(as_stream(stream), device);
          RangeStats s;
          {
            py::gil_scoped_release nogil;
            s = engine.range(v);
          }
          return stats_tuple(repeat_stats(s, mult));
        },
        py::arg("ptr"), py::arg("dtype"), py::arg("shape"), py::arg("strides"), py::arg("multiplicity"),
        py::arg("stream") = 0, py::arg("device") = -1,
        "Finite min/max and value counts: (min, max, num, nan, posinf, neginf).");

  m.def("histogram_v2",
        [](std::uintptr_t ptr, int dtype, const Shape& shape, const Shape& strides, std::uint64_t mult,
           std::int64_t k, std::uintptr_t stream, int device) {
          const StridedView v = make_view(ptr, dtype, shape, strides, mult);
          cuda::CudaEngine engine(as_stream(stream), device);
          V2Result r;
          {
            py::gil_scoped_release nogil;
            r = histogram_v2(engine, v, k);
          }
          return v2_tuple(r);
        },
        py::arg("ptr"), py::arg("dtype"), py::arg("shape"), py::arg("strides"), py::arg("multiplicity"),
        py::arg("k"), py::arg("stream") = 0, py::arg("device") = -1,
        "TensorBoard v2 buckets: (edges, counts, stats).");

  m.def("histogram_v2_in_range",
        [](std::uintptr_t ptr, int dtype, const Shape& shape, const Shape& strides, std::uint64_t mult,
           std::int64_t k, double gmin, double gmax, std::uint64_t gnum, const py::object& local_stats,
           std::uintptr_t stream, int device) {
          const StridedView v = make_view(ptr, dtype, shape, strides, mult);
          const auto known = bindings::known_local_stats(local_stats, mult);
          cuda::CudaEngine engine(as_stream(stream), device);
          V2Result r;
          {
            py::gil_scoped_release nogil;
            const RangeStats local = known ? *known : engine.range(v);
            r = histogram_v2_in_range(engine, v, k, local, gmin, gmax, gnum);
          }
          return v2_tuple(r);
        },
        py::arg("ptr"), py::arg("dtype"), py::arg("shape"), py::arg("strides"), py::arg("multiplicity"),
        py::arg("k"), py::arg("gmin"), py::arg("gmax"), py::arg("gnum"), py::arg("local_stats") = py::none(),
        py::arg("stream") = 0,
        py::arg("device") = -1, "v2 buckets of a shard against a global range: (edges, counts, local stats).");

  m.def("histogram_v1",
        [](std::uintptr_t ptr, int dtype, const Shape& shape, const Shape& strides, std::uint64_t mult,
           std::uintptr_t stream, int device) {
          const StridedView v = make_view(ptr, dtype, shape, strides, mult);
          cuda::CudaEngine engine(as_stream(stream), device);
          V1Result r;
          {
            py::gil_scoped_release nogil;
            r = histogram_v1(engine, v);
          }
          return py::make_tuple(to_numpy(r.counts), stats_tuple(r.stats), r.sum, r.sum_squares);
        },
        py::arg("ptr"), py::arg("dtype"), py::arg("shape"), py::arg("strides"), py::arg("multiplicity"),
        py::arg("stream") = 0, py::arg("device") = -1, "TensorFlow v1 buckets: (counts, stats, sum, sum_squares).");

  m.def("histogram_v1_partial",
        [](std::uintptr_t ptr, int dtype, const Shape& shape, const Shape& strides, std::uint64_t mult,
           std::uintptr_t stream, int device) {
          const StridedView v = make_view(ptr, dtype, shape, strides, mult);
          cuda::CudaEngine engine(as_stream(stream), device);
          V1Partial r;
          {
            py::gil_scoped_release nogil;
            r = histogram_v1_partial(engine, v);
          }
          return py::make_tuple(to_numpy(r.counts), stats_tuple(r.stats), to_numpy(r.sum_digits),
                                to_numpy(r.sumsq_digits));
        },
        py::arg("ptr"), py::arg("dtype"), py::arg("shape"), py::arg("strides"), py::arg("multiplicity"),
        py::arg("stream") = 0, py::arg("device") = -1,
        "A shard's v1 content with exact sums as int64 digit arrays: (counts, stats, sum_digits, "
        "sum_squares_digits).");

  py::class_<cuda::PendingV2>(m, "PendingV2",
                              "v2 histograms enqueued on a stream; results arrive in pinned memory.")
      .def("done",
           [](cuda::PendingV2& p) {
             py::gil_scoped_release nogil;
             return p.done();
           })
      .def("wait",
           [](cuda::PendingV2& p) {
             py::gil_scoped_release nogil;
             p.wait();
           })
      .def("results",
           [](cuda::PendingV2& p) {
             std::vector<V2Result> rs;
             {
               py::gil_scoped_release nogil;
               rs = p.results();
             }
             py::list out;
             for (const auto& r : rs) out.append(v2_tuple(r));
             return out;
           })
      .def("__len__", &cuda::PendingV2::size);

  m.def("enqueue_v2_many",
        [](const py::list& views, const std::vector<std::int64_t>& ks, std::uintptr_t stream, int device) {
          auto items = batch_items(views, ks);
          std::unique_ptr<cuda::PendingV2> p;
          {
            py::gil_scoped_release nogil;
            p = std::make_unique<cuda::PendingV2>(std::move(items), as_stream(stream), device);
          }
          return p;
        },
        py::arg("views"), py::arg("ks"), py::arg("stream") = 0, py::arg("device") = -1,
        "Enqueues v2 histograms of many tensors (a fixed number of launches) and returns a PendingV2.");

  m.def("histogram_v2_many",
        [](const py::list& views, const std::vector<std::int64_t>& ks, std::uintptr_t stream, int device) {
          auto items = batch_items(views, ks);
          std::vector<V2Result> rs;
          {
            py::gil_scoped_release nogil;
            cuda::PendingV2 p(std::move(items), as_stream(stream), device);
            rs = p.results();
          }
          py::list out;
          for (const auto& r : rs) out.append(v2_tuple(r));
          return out;
        },
        py::arg("views"), py::arg("ks"), py::arg("stream") = 0, py::arg("device") = -1,
        "v2 histograms of many tensors: a list of (edges, counts, stats).");

  // Test hooks: the host builds of the host-and-device helpers.
  m.def("_check_planner",
        [](bool f64, double mn, double mx, std::int64_t k) {
          return f64 ? check_planner_impl<double>(mn, mx, k) : check_planner_impl<float>(mn, mx, k);
        },
        "(mismatching thresholds, same width) of the device planner's host build vs core's plan.");
  m.def("_host_convert", &host_convert, "Host build of the device dtype conversion, as float64.");

  m.attr("max_buckets") = kMaxBuckets;
}
