// Minimal fibers for the emulator: a stack and a saved stack pointer, switched by a few lines of
// assembly on x86-64 (a switch costs a few nanoseconds) and by ucontext elsewhere.
#pragma once
#include <cstddef>

#if !defined(__x86_64__)
#include <ucontext.h>
#endif

namespace histgpu::simt::emu {

struct FiberContext {
#if defined(__x86_64__)
  void* sp = nullptr;
#else
  ucontext_t uc;
#endif
};

// Prepares `ctx` to run entry(arg) on the stack [stack, stack + size) at its first switch_to.
// entry must never return: it switches away for the last time instead.
void make_fiber(FiberContext& ctx, void* stack, std::size_t size, void (*entry)(void*), void* arg);
// Saves the running context into `from` and resumes `to`.
void switch_fiber(FiberContext& from, FiberContext& to);

}  // namespace histgpu::simt::emu
