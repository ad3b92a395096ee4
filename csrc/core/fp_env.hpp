// IEEE arithmetic for the duration of an engine call. A caller's thread may run with subnormals
// flushed to zero -- XLA's callback threads and TensorFlow's numpy_function threads do -- and
// both the comparisons with thresholds and the host planner would then see subnormals as zero
// (docs/semantics.md §1.5). Worker threads started inside the call inherit the restored mode.
#pragma once

#if defined(__x86_64__) || defined(__i386__)
#include <xmmintrin.h>
#endif

namespace histgpu {

class IeeeArithmetic {
 public:
  IeeeArithmetic() {
#if defined(__x86_64__) || defined(__i386__)
    saved_ = _mm_getcsr();
    _mm_setcsr(saved_ & ~(kFlushToZero | kDenormalsAreZero));
#elif defined(__aarch64__)
    __asm__ __volatile__("mrs %0, fpcr" : "=r"(saved_));
    const unsigned long ieee = saved_ & ~kFpcrFlushToZero;
    __asm__ __volatile__("msr fpcr, %0" : : "r"(ieee));
#endif
  }
  ~IeeeArithmetic() {
#if defined(__x86_64__) || defined(__i386__)
    _mm_setcsr(saved_);
#elif defined(__aarch64__)
    __asm__ __volatile__("msr fpcr, %0" : : "r"(saved_));
#endif
  }
  IeeeArithmetic(const IeeeArithmetic&) = delete;
  IeeeArithmetic& operator=(const IeeeArithmetic&) = delete;

 private:
#if defined(__x86_64__) || defined(__i386__)
  static constexpr unsigned kFlushToZero = 0x8000, kDenormalsAreZero = 0x0040;
  unsigned saved_ = 0;
#elif defined(__aarch64__)
  static constexpr unsigned long kFpcrFlushToZero = 1ul << 24;
  unsigned long saved_ = 0;
#endif
};

}  // namespace histgpu
