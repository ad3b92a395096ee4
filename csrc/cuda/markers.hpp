// Markers for the analysis build of benchmarks/gpu/static_report.py (-DHISTGPU_SASS_MARKERS):
// one iteration of the vectorised loop is bracketed by BEGIN/END, and the entry of every rare
// path (non-finite values, values outside the exact-sum window, searches of the whole table) is
// marked RARE, so that the machine instructions of the typical iteration can be counted: the
// shortest path from BEGIN to END that meets no RARE marker. No-ops in every other build.
#pragma once

#if defined(HISTGPU_SASS_MARKERS) && defined(__CUDA_ARCH__)
#define HISTGPU_MARK_BEGIN() asm volatile("pmevent 1;")
#define HISTGPU_MARK_END() asm volatile("pmevent 2;")
#define HISTGPU_MARK_RARE() asm volatile("pmevent 3;")
#else
#define HISTGPU_MARK_BEGIN()
#define HISTGPU_MARK_END()
#define HISTGPU_MARK_RARE()
#endif
