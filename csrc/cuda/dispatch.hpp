// Which kernel runs a (pass, dtype, layout, count mode): written once for the GPU build
// (kernels.cu) and the emulated build (kernels_host.cpp), each with its own Launcher:
// L::template run<D, kContig, PassType>() launches (or returns) that kernel.
#pragma once
#include "cuda/passes/count_v2.cuh"
#include "cuda/passes/range.cuh"
#include "cuda/passes/v1.cuh"
#include "cuda/policy.hpp"

namespace histgpu::cuda {

template <class L, DType D, bool C> auto dispatch_pass(L& l, Pass pass, CountMode mode) {
  using K = typename DTypeTraits<D>::Kernel;
  switch (pass) {
    case Pass::Range: return l.template run<D, C, RangePass<K>>();
    case Pass::V1: return l.template run<D, C, V1Pass<K>>();
    default: break;
  }
  switch (mode) {
    case CountMode::LaneCounters: return l.template run<D, C, CountPass<K, CountMode::LaneCounters>>();
    case CountMode::SharedCounters: return l.template run<D, C, CountPass<K, CountMode::SharedCounters>>();
    case CountMode::SharedTable: return l.template run<D, C, CountPass<K, CountMode::SharedTable>>();
    default: return l.template run<D, C, CountPass<K, CountMode::GlobalTable>>();
  }
}

// Dedicated vectorised kernels for the dtypes that fill models (contiguous only); one generic
// kernel per kernel type for everything else, which keeps compile times short.
template <class L> auto dispatch(L& l, Pass pass, DType dtype, bool contiguous, CountMode mode) {
  if (contiguous) {
    switch (dtype) {
      case DType::Float32: return dispatch_pass<L, DType::Float32, true>(l, pass, mode);
      case DType::BFloat16: return dispatch_pass<L, DType::BFloat16, true>(l, pass, mode);
      case DType::Float16: return dispatch_pass<L, DType::Float16, true>(l, pass, mode);
      case DType::Float64: return dispatch_pass<L, DType::Float64, true>(l, pass, mode);
      default: break;
    }
  }
  if (kernel_type(dtype) == KernelType::F64) return dispatch_pass<L, DType::Float64, false>(l, pass, mode);
  return dispatch_pass<L, DType::Float32, false>(l, pass, mode);
}

}  // namespace histgpu::cuda
