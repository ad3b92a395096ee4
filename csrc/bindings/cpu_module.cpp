// histgpu._cpu: the compiled module every build has. It registers the shared Python types
// (bindings/types.hpp), the CPU engine, and the small host helpers the Python layer needs
// (dtype table, v1 limits, edges, exact-sum rounding, record checksums).
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include "bindings/cpu_arrays.hpp"
#include "bindings/engine.hpp"
#include "bindings/types.hpp"
#include "core/crc32c.hpp"
#include "core/fp_env.hpp"
#include "core/histogram.hpp"
#include "core/numpy_bins.hpp"
#include "core/summary_bytes.hpp"
#include "core/thresholds.hpp"
#include "cpu/engine.hpp"
#include "cuda/engine.hpp"
#include "cuda/emulator/emulator.hpp"
#include "cuda/emulator/probes.hpp"
#include "cuda/policy.hpp"

namespace py = pybind11;
using namespace histgpu;
using bindings::to_numpy;

namespace {

// Every row of core/dtypes.hpp: (code, name, itemsize, kernel bits, dlpack code, dlpack bits).
py::list dtype_table() {
  py::list rows;
#define HISTGPU_X(N, code, NAME, S, K, DEC, DLC, DLB) \
  rows.append(py::make_tuple(code, NAME, sizeof(S), 8 * sizeof(K), DLC, DLB));
  HISTGPU_DTYPE_TABLE(HISTGPU_X)
#undef HISTGPU_X
  return rows;
}

// core's convert<D> applied to raw bytes (a test hook: every bit pattern against ml_dtypes).
py::array_t<double> convert_bytes(int dtype, const py::bytes& raw) {
  if (!valid_dtype(dtype)) throw std::invalid_argument("histgpu: unknown dtype code");
  const std::string s = raw;
  return visit_dtype(static_cast<DType>(dtype), [&](auto d) {
    constexpr DType D = decltype(d)::value;
    using S = typename DTypeTraits<D>::Storage;
    const std::size_t n = s.size() / sizeof(S);
    py::array_t<double> out(static_cast<py::ssize_t>(n));
    for (std::size_t i = 0; i < n; ++i) {
      S r;
      std::memcpy(&r, s.data() + i * sizeof(S), sizeof r);
      out.mutable_data()[i] = static_cast<double>(convert<D>(r));
    }
    return out;
  });
}

}  // namespace

PYBIND11_MODULE(_cpu, m) {
  m.doc() = "histgpu's host engine and shared types (internal; use the histgpu package)";
  bindings::bind_types(m);

  // Before the engines: their numpy_counts takes it.
  py::class_<NumpyBins>(m, "NumpyBins", "A numpy.histogram bin rule with numpy's constants (core/numpy_bins.hpp).")
      .def(py::init([](bool uniform, std::vector<double> edges, int edge_prec, double keep_lo, double keep_hi,
                       int keep_prec, double sub_first, int sub_prec, double denom, int div_prec, double n_mul,
                       int mul_prec) {
             auto fmt = [](int c) {
               if (c < 0 || c > static_cast<int>(NpFloat::E5M2)) throw std::invalid_argument("histgpu: unknown float format code");
               return static_cast<NpFloat>(c);
             };
             NumpyBins b;
             b.uniform = uniform;
             b.edges = std::move(edges);
             b.edge_prec = fmt(edge_prec);
             b.keep_lo = keep_lo;
             b.keep_hi = keep_hi;
             b.keep_prec = fmt(keep_prec);
             b.sub_first = sub_first;
             b.sub_prec = fmt(sub_prec);
             b.denom = denom;
             b.div_prec = fmt(div_prec);
             b.n_mul = n_mul;
             b.mul_prec = fmt(mul_prec);
             b.check();
             return b;
           }),
           py::arg("uniform"), py::arg("edges"), py::arg("edge_prec"), py::arg("keep_lo") = 0.0,
           py::arg("keep_hi") = 0.0, py::arg("keep_prec") = static_cast<int>(NpFloat::F64), py::arg("sub_first") = 0.0,
           py::arg("sub_prec") = static_cast<int>(NpFloat::F64), py::arg("denom") = 1.0,
           py::arg("div_prec") = static_cast<int>(NpFloat::F64), py::arg("n_mul") = 1.0,
           py::arg("mul_prec") = static_cast<int>(NpFloat::F64))
      .def_property_readonly("bins", &NumpyBins::bins)
      .def("bin", &NumpyBins::bin, py::arg("x"), "numpy's bin of one value (-1: not counted, -2: numpy fails).")
      .def(
          "plan",
          [](const NumpyBins& b, int dtype, double data_min, double data_max) {
            if (!valid_dtype(dtype)) throw std::invalid_argument("histgpu: unknown dtype code");
            const NumpyPlan p = NumpyPlan::make(b, static_cast<DType>(dtype), data_min, data_max);
            std::vector<double> t;
            if (p.plan.kernel == KernelType::F32) t.assign(p.plan.thresholds_f32.begin(), p.plan.thresholds_f32.end());
            else t = p.plan.thresholds_f64;
            return py::make_tuple(to_numpy(t), to_numpy(p.label));
          },
          py::arg("dtype"), py::arg("data_min"), py::arg("data_max"),
          "(thresholds, labels) of the engine buckets for data of this dtype and range.");
  m.def("np_round", [](double v, int p) { return np_round(v, static_cast<NpFloat>(p)); }, py::arg("v"), py::arg("fmt"),
        "v rounded to a float format (0 float16, 1 bfloat16, 2 float32, 3 float64, 4 float8_e4m3fn, 5 float8_e5m2).");

  auto cpu_engine = bindings::bind_engine<cpu::CpuEngine>(m, "CpuEngine", "The multi-threaded CPU engine.");
  cpu_engine.def(py::init<int, const std::string&>(), py::arg("threads"), py::arg("isa") = "",
                 "isa: 'baseline', 'avx2', 'avx512' or '' (the best this CPU runs).");
  cpu_engine.def(
      "v1_many",
      [](cpu::CpuEngine& e, const std::vector<StridedView>& views) {
        py::gil_scoped_release nogil;
        const IeeeArithmetic ieee;
        return e.v1_many(views);
      },
      py::arg("views"),
      "v1 of many views in one call (the GIL released once; tensors shared out over the threads), in input order.");
  bindings::bind_cpu_arrays(cpu_engine, m);

  bindings::bind_engine<cuda::EmulatedCudaEngine>(
      m, "EmulatedCudaEngine",
      "The CUDA engine's kernels run on the host, block by block and thread by thread (no GPU needed).")
      .def(py::init([](int multiprocessors, int smem_per_block, int smem_per_multiprocessor, int threads_per_multiprocessor,
                       bool verify_plan, std::uint64_t memory_limit) {
             cuda::DeviceProps p = cuda::EmulatedCudaEngine::default_props();
             if (multiprocessors > 0) p.multiprocessors = multiprocessors;
             if (smem_per_block > 0) p.smem_per_block_optin = smem_per_block;
             if (smem_per_multiprocessor > 0) p.smem_per_multiprocessor = smem_per_multiprocessor;
             if (threads_per_multiprocessor > 0) p.threads_per_multiprocessor = threads_per_multiprocessor;
             p.memory_limit = memory_limit;
             cuda::EmulatedCudaEngine e(p);
             e.set_verify_plan(verify_plan);
             return e;
           }),
           py::arg("multiprocessors") = 0, py::arg("smem_per_block") = 0, py::arg("smem_per_multiprocessor") = 0,
           py::arg("threads_per_multiprocessor") = 0, py::arg("verify_plan") = false, py::arg("memory_limit") = 0,
           "The emulated device's properties (0: the default, a small GPU with sm_86's 99 KiB of shared "
           "memory per block); verify_plan: check every device plan against core's, whatever k; "
           "memory_limit: device bytes it may allocate (0: any), for failure tests.")
      .def("trace", &cuda::EmulatedCudaEngine::trace, "The runtime calls made so far (stream ordering, launches).")
      .def("pinned_bytes", &cuda::EmulatedCudaEngine::pinned_bytes, "Pinned host memory its pool holds for reuse.")
      .def(
          "enqueue_v2",
          [](cuda::EmulatedCudaEngine& e, const std::vector<StridedView>& views, const std::vector<std::int64_t>& ks,
             const std::vector<std::uintptr_t>& producers) {
            if (views.size() != ks.size()) throw std::invalid_argument("histgpu: one bucket count per view expected");
            std::vector<BatchItem> items;
            for (std::size_t i = 0; i < views.size(); ++i) items.push_back(BatchItem{views[i], ks[i]});
            std::vector<cuda::Stream> ps;
            for (std::uintptr_t p : producers) ps.push_back(reinterpret_cast<cuda::Stream>(p));
            py::gil_scoped_release nogil;
            const IeeeArithmetic ieee;
            return e.enqueue_v2(std::move(items), ps);
          },
          py::arg("views"), py::arg("ks"), py::arg("producers") = std::vector<std::uintptr_t>{},
          "As _cuda.enqueue_v2_many, on the emulated device (streams are only traced there).");
  // Dropping a PendingV2 never waits for a device; the GIL is released all the same.
  py::class_<cuda::PendingV2, std::unique_ptr<cuda::PendingV2, bindings::ReleasingGil>>(
      m, "PendingV2", "v2 histograms enqueued on a (real or emulated) GPU stream; results arrive in pinned memory.")
      .def("done",
           [](cuda::PendingV2& p) {
             py::gil_scoped_release nogil;
            const IeeeArithmetic ieee;
             return p.done();
           })
      .def("wait",
           [](cuda::PendingV2& p) {
             py::gil_scoped_release nogil;
            const IeeeArithmetic ieee;
             p.wait();
           })
      .def("results",
           [](cuda::PendingV2& p) {
             py::gil_scoped_release nogil;
            const IeeeArithmetic ieee;
             return p.results();
           })
      .def("__len__", &cuda::PendingV2::size);
  m.def(
      "count_mode",
      [](std::int64_t k, int key_size, std::uint64_t cap) { return static_cast<int>(cuda::count_mode(k, key_size, cap)); },
      py::arg("k"), py::arg("key_size"), py::arg("cap") = cuda::kCountSmemCap,
      "The shared-memory mode of a GPU count pass of k buckets (csrc/cuda/policy.hpp): 0 lane counters, "
      "1 shared counters, 2 shared table, 3 global table.");
  m.def("_emulator_probe", &simt::emu::run_probe, py::arg("name"),
        "Runs one of the emulator's misbehaving test kernels: 'raised: ...' or 'ok: ...'.");
  m.def(
      "emulator_counters",
      [] {
        const auto c = simt::emu::counters();
        return py::make_tuple(c.blocks, c.threads, c.switches);
      },
      "(blocks, threads, fiber switches) the emulator ran on this thread so far.");

  m.def("dtype_table", &dtype_table,
        "Every dtype the engines read: (code, name, itemsize, kernel bits, dlpack code, dlpack bits).");
  m.def("v1_limits", [] { return to_numpy(v1_default_limits()); }, "TensorFlow's default v1 bucket limits.");
  m.def(
      "torch_layout_values",
      [](const std::vector<std::string>& tags, const std::vector<const V1Result*>& results) {
        if (tags.size() != results.size()) throw std::invalid_argument("histgpu: one tag per result expected");
        py::list out;
        for (std::size_t i = 0; i < tags.size(); ++i) {
          if (results[i] == nullptr) throw std::invalid_argument("histgpu: a result is None");
          const std::optional<std::string> v = torch_layout_value(tags[i], *results[i]);
          if (v) out.append(py::bytes(*v));
          else out.append(py::none());
        }
        return out;
      },
      py::arg("tags"), py::arg("results"),
      "Each V1Result as the framed Summary value PyTorch writes for bins='tensorflow' (tags: str), or None "
      "where the general path must build it (no finite value, a support reaching the outermost limits).");
  m.def("v1_sizes",
        [] {
          const V1Sizes s = v1_sizes();
          return py::make_tuple(s.buckets, s.digits);
        },
        "(v1 buckets, exact-sum digits) of every v1 result.");
  m.def("v2_edges",
        [](double mn, double mx, std::uint64_t num, std::int64_t k) {
          return to_numpy(v2_edges(GlobalRange{mn, mx, num}, k));
        },
        py::arg("min"), py::arg("max"), py::arg("num"), py::arg("k"),
        "The k + 1 edges of a v2 histogram of a range holding num finite values.");
  m.def("round_digit_sums",
        [](py::array_t<std::int64_t, py::array::c_style | py::array::forcecast> digits) {
          if (digits.ndim() != 1 || digits.shape(0) != BigFixed::kDigits)
            throw std::invalid_argument("histgpu: expected " + std::to_string(BigFixed::kDigits) +
                                        " exact-sum digits");
          return BigFixed::from_digit_sums(digits.data()).to_double();
        },
        py::arg("digits"), "The float64 nearest to the exact value that summed digit arrays stand for.");
  m.def("crc32c",
        [](const py::bytes& data) {
          char* p = nullptr;
          Py_ssize_t n = 0;
          if (PyBytes_AsStringAndSize(data.ptr(), &p, &n) != 0) throw py::error_already_set();
          std::uint32_t crc;
          {
            py::gil_scoped_release nogil;
            const IeeeArithmetic ieee;
            crc = crc32c(p, static_cast<std::size_t>(n));
          }
          return crc;
        },
        py::arg("data"), "CRC-32C of bytes (TensorFlow's record checksum).");
  m.def("active_isa", [](const std::string& isa) { return std::string(cpu::kernels_named(isa).isa); },
        py::arg("isa") = "", "The kernel build `isa` ('' = the best) resolves to on this CPU.");
  m.def("supported_isas", &cpu::supported_isas, "Kernel builds this CPU can run.");
  m.def("_convert_bytes", &convert_bytes, py::arg("dtype"), py::arg("raw"),
        "core's exact dtype conversion (shared by the CPU and CUDA kernels), as float64.");
  m.attr("max_buckets") = kMaxBuckets;
}
