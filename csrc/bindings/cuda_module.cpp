// histgpu._cuda: the CUDA engine, built wherever nvcc is found. It imports histgpu._cpu first,
// whose registered types (View, RangeStats, results) it takes and returns, and answers
// device_available() == False on machines without a driver or GPU: the CUDA runtime is linked
// statically and loads the driver only when first asked.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstring>
#include <memory>

#include "bindings/engine.hpp"
#include "bindings/types.hpp"
#include "core/fp_env.hpp"
#include "core/histogram.hpp"
#include "cuda/device.hpp"
#include "cuda/engine.hpp"
#include "cuda/passes/plan.cuh"

namespace py = pybind11;
using namespace histgpu;

namespace {

void* as_stream(std::uintptr_t s) { return reinterpret_cast<void*>(s); }

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

py::dict info() {
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
}

}  // namespace

PYBIND11_MODULE(_cuda, m) {
  m.doc() = "histgpu CUDA engine (internal; use the histgpu package)";
  py::module_::import("histgpu._cpu");  // the shared types

  m.def("device_available", &cuda::device_available,
        "True when a CUDA driver and at least one device are usable (never raises).");
  m.def("device_count", &cuda::device_count, "Usable CUDA devices (0 without a driver).");
  m.def("pointer_device", [](std::uintptr_t p) { return cuda::pointer_device(p); }, py::arg("ptr"),
        "The CUDA device holding this address, or -1 for host/unknown memory.");
  m.def("info", &info, "Runtime, driver, devices and compiled architectures.");

  bindings::bind_engine<cuda::CudaEngine>(m, "CudaEngine", "The CUDA engine, on the producer's stream.")
      .def(py::init([](std::uintptr_t stream, int device) { return cuda::CudaEngine(as_stream(stream), device); }),
           py::arg("stream") = 0, py::arg("device") = -1,
           "stream: a cudaStream_t as an integer (0: the legacy default stream); device: -1 for the "
           "device that holds each view's memory.");

  // PendingV2 (the results of enqueue_v2_many) is registered by histgpu._cpu.
  m.def(
      "enqueue_v2_many",
      [](const std::vector<StridedView>& views, const std::vector<std::int64_t>& ks, std::uintptr_t stream,
         int device, const std::vector<std::uintptr_t>& producers) {
        if (views.size() != ks.size()) throw std::invalid_argument("histgpu: one bucket count per view expected");
        std::vector<BatchItem> items;
        for (std::size_t i = 0; i < views.size(); ++i) items.push_back(BatchItem{views[i], ks[i]});
        std::vector<cuda::Stream> ps;
        for (std::uintptr_t p : producers) ps.push_back(as_stream(p));
        py::gil_scoped_release nogil;
            const IeeeArithmetic ieee;
        cuda::CudaEngine engine(as_stream(stream), device);
        return engine.enqueue_v2(std::move(items), ps);
      },
      py::arg("views"), py::arg("ks"), py::arg("stream") = 0, py::arg("device") = -1,
      py::arg("producers") = std::vector<std::uintptr_t>{},
      "Enqueues v2 histograms of many views on `stream` (a fixed number of launches), ordered after the "
      "producer streams' work so far and before their later work, and returns a PendingV2.");

  py::class_<cuda::DeviceBuffer>(m, "DeviceBuffer", "Device memory holding a copy of host bytes.")
      .def(py::init([](const py::bytes& data, int device) {
             const std::string s = data;
             return std::make_unique<cuda::DeviceBuffer>(s.data(), s.size(), device);
           }),
           py::arg("data"), py::arg("device") = 0)
      .def_property_readonly("ptr", &cuda::DeviceBuffer::ptr);

  m.def(
      "_check_planner",
      [](bool f64, double mn, double mx, std::int64_t k) {
        return f64 ? check_planner_impl<double>(mn, mx, k) : check_planner_impl<float>(mn, mx, k);
      },
      py::arg("f64"), py::arg("min"), py::arg("max"), py::arg("k"),
      "(mismatching thresholds, same width) of the device planner's host build vs core's plan.");
  m.attr("max_buckets") = kMaxBuckets;
}
