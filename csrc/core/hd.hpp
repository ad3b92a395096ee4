// HISTGPU_HD marks helpers that the CUDA kernels and the host share (one source for both).
#pragma once

#if defined(__CUDACC__)
#define HISTGPU_HD __host__ __device__ __forceinline__
#else
// static: each per-ISA CPU kernel object keeps its own copy, so the linker can never hand an
// AVX-512 build of a helper to the baseline code path.
#define HISTGPU_HD static inline
#endif

// constexpr helpers the host and the kernels both evaluate (sizes, modes, limits).
#if defined(__CUDACC__)
#define HISTGPU_HD_CONSTEXPR __host__ __device__ constexpr
#else
#define HISTGPU_HD_CONSTEXPR constexpr
#endif
