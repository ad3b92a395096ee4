// Exact conversion of every accepted dtype into the kernel type, for strided and narrow inputs
// (compiled per instruction set; see isa.hpp). The value of each element is core's convert<D>
// (core/dtypes.hpp), the very function the CUDA kernels use; 8-bit types go through a 256-entry
// table built from it, float16 through the compiler's _Float16 (hardware F16C where present),
// which converts exactly too (tests/core check every bit pattern of both against ml_dtypes).
#include <cstring>
#include <stdexcept>
#include <type_traits>

#include "core/dtypes.hpp"
#include "cpu/kernels/isa.hpp"

namespace histgpu::cpu::HISTGPU_ISA {
namespace {

template <DType D> const float* byte_table() {
  static const auto table = [] {
    struct T { float v[256]; } t;
    for (unsigned b = 0; b < 256; ++b)
      t.v[b] = convert<D>(static_cast<typename DTypeTraits<D>::Storage>(b));
    return t;
  }();
  return table.v;
}

void lookup_bytes(const float* table, const char* p, std::int64_t stride, std::size_t n, float* out) {
  for (std::size_t i = 0; i < n; ++i)
    out[i] = table[static_cast<unsigned char>(p[static_cast<std::int64_t>(i) * stride])];
}

// Element i of the run at p (byte stride `stride`) as dtype D's storage type.
template <DType D, class K, class Cvt>
void convert_run(const char* p, std::int64_t stride, std::size_t n, K* out, Cvt cvt) {
  using S = typename DTypeTraits<D>::Storage;
  if (stride == static_cast<std::int64_t>(sizeof(S))) {
    S tmp[kBlock];  // one copy in, so that the loop below vectorises
    std::memcpy(tmp, p, n * sizeof(S));
    for (std::size_t i = 0; i < n; ++i) out[i] = cvt(tmp[i]);
  } else {
    for (std::size_t i = 0; i < n; ++i) {
      S v;
      std::memcpy(&v, p + static_cast<std::int64_t>(i) * stride, sizeof v);
      out[i] = cvt(v);
    }
  }
}

template <class K> void convert_any(DType t, const char* p, std::int64_t stride, std::size_t n, K* out) {
  visit_dtype(t, [&](auto d) {
    constexpr DType D = decltype(d)::value;
    using Tr = DTypeTraits<D>;
    if constexpr (!std::is_same_v<typename Tr::Kernel, K>) {
      throw std::logic_error("histgpu: dtype is not counted in this kernel type");
    } else if constexpr (sizeof(typename Tr::Storage) == 1) {
      lookup_bytes(byte_table<D>(), p, stride, n, out);
    } else if constexpr (D == DType::Float16) {
      convert_run<D>(p, stride, n, out, [](std::uint16_t h) {
        _Float16 f;
        std::memcpy(&f, &h, 2);
        return static_cast<float>(f);
      });
    } else {
      convert_run<D>(p, stride, n, out, [](typename Tr::Storage s) { return convert<D>(s); });
    }
  });
}

}  // namespace

void to_f32(DType t, const char* p, std::int64_t stride, std::size_t n, float* out) {
  convert_any<float>(t, p, stride, n, out);
}
void to_f64(DType t, const char* p, std::int64_t stride, std::size_t n, double* out) {
  convert_any<double>(t, p, stride, n, out);
}

}  // namespace histgpu::cpu::HISTGPU_ISA
