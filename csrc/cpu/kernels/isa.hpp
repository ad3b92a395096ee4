// Shared by the per-instruction-set kernel sources in this folder: each .cpp here is compiled
// once per instruction set (baseline, AVX2, AVX-512) with -DHISTGPU_ISA=<name>, and everything
// it defines lives in namespace histgpu::cpu::<name> (see CMakeLists.txt). table.cpp gathers
// the entry points below into that build's KernelTable.
#pragma once
#include <cstddef>
#include <cstdint>

#include "cpu/kernels.hpp"

#if defined(__AVX512F__) && defined(__AVX512DQ__)
#include <immintrin.h>
#define HISTGPU_HAVE_AVX512 1
#elif defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#define HISTGPU_HAVE_AVX2 1
#endif

#ifndef HISTGPU_ISA
#error "compile with -DHISTGPU_ISA=<isa name>"
#endif

namespace histgpu::cpu::HISTGPU_ISA {

template <class K> using KeyOf = typename FloatBits<K>::UInt;

// Passes that stream from memory ask for their data a little ahead: the hardware prefetchers
// alone leave some vector loops waiting on memory (the AVX-512 v2 count pass ran at a third of
// the read bandwidth without this on the AMD EPYC it was tuned on).
constexpr std::size_t kPrefetchAhead = 2048;  // bytes
inline void prefetch_ahead(const void* p, std::size_t bytes) {
  for (std::size_t off = 0; off < bytes; off += 64)
    __builtin_prefetch(static_cast<const char*>(p) + kPrefetchAhead + off);
}

// range.cpp: min/max keys and value counts of a block.
void range_f32(const float* x, std::size_t n, RangeAcc<float>& acc);
void range_f64(const double* x, std::size_t n, RangeAcc<double>& acc);
// count_v2.cpp: v2 counts against thresholds (generic and SIMD).
void count_v2_f32(const float* x, std::size_t n, const CountArgs<float>& a, std::uint64_t* hist);
void count_v2_f64(const double* x, std::size_t n, const CountArgs<double>& a, std::uint64_t* hist);
// v1.cpp: TensorFlow's v1 buckets, range and exact sums in one read.
void v1_f32(const float* x, std::size_t n, const CountArgs<float>& a, std::uint64_t* hist, V1Acc<float>& acc);
void v1_f64(const double* x, std::size_t n, const CountArgs<double>& a, std::uint64_t* hist, V1Acc<double>& acc);
// convert.cpp: exact conversion of every dtype into the kernel type.
void to_f32(DType t, const char* p, std::int64_t stride, std::size_t n, float* out);
void to_f64(DType t, const char* p, std::int64_t stride, std::size_t n, double* out);
// patterns.cpp: the raw-pattern path's counters.
void patterns16(const std::uint16_t* x, std::size_t n, std::uint32_t* counts);
void patterns8(const std::uint8_t* x, std::size_t n, std::uint32_t* counts);
// read.cpp: the read ceiling.
std::uint64_t read_bytes(const char* p, std::size_t n);

}  // namespace histgpu::cpu::HISTGPU_ISA
