#include "cuda/emulator/fiber.hpp"

#include <cstdint>
#include <cstring>

#if defined(__x86_64__)

// switch: push the callee-saved registers and the SSE/x87 control words, swap stacks, pop.
// entry: the first "return" of a new fiber lands here, with the entry function in r12 and
// its argument in r13.
asm(R"(
  .text
  .p2align 4
  .type histgpu_emu_switch,@function
histgpu_emu_switch:
  pushq %rbp
  pushq %rbx
  pushq %r12
  pushq %r13
  pushq %r14
  pushq %r15
  subq $8, %rsp
  stmxcsr (%rsp)
  fnstcw 4(%rsp)
  movq %rsp, (%rdi)
  movq %rsi, %rsp
  ldmxcsr (%rsp)
  fldcw 4(%rsp)
  addq $8, %rsp
  popq %r15
  popq %r14
  popq %r13
  popq %r12
  popq %rbx
  popq %rbp
  ret
  .size histgpu_emu_switch, .-histgpu_emu_switch

  .p2align 4
  .type histgpu_emu_entry,@function
histgpu_emu_entry:
  movq %r13, %rdi
  callq *%r12
  ud2
  .size histgpu_emu_entry, .-histgpu_emu_entry
)");

extern "C" void histgpu_emu_switch(void** save_sp, void* new_sp);
extern "C" void histgpu_emu_entry();

namespace histgpu::simt::emu {

void make_fiber(FiberContext& ctx, void* stack, std::size_t size, void (*entry)(void*), void* arg) {
  auto top = reinterpret_cast<std::uintptr_t>(stack) + size;
  top &= ~std::uintptr_t(15);
  // The return address sits at an address = 8 (mod 16): after `ret` the stack pointer is
  // 16-aligned, and the `call` in histgpu_emu_entry enters entry() as the ABI expects.
  auto* slot = reinterpret_cast<std::uint64_t*>(top - 24);
  slot[0] = reinterpret_cast<std::uint64_t>(&histgpu_emu_entry);
  slot[1] = 0;  // never used: entry() does not return
  std::uint64_t* regs = slot - 6;  // r15, r14, r13, r12, rbx, rbp (in pop order)
  regs[0] = 0;
  regs[1] = 0;
  regs[2] = reinterpret_cast<std::uint64_t>(arg);    // r13
  regs[3] = reinterpret_cast<std::uint64_t>(entry);  // r12
  regs[4] = 0;
  regs[5] = 0;
  auto* control = reinterpret_cast<std::uint32_t*>(regs - 1);
  std::uint32_t mxcsr;
  std::uint16_t fpucw;
  asm volatile("stmxcsr %0" : "=m"(mxcsr));
  asm volatile("fnstcw %0" : "=m"(fpucw));
  control[0] = mxcsr;
  control[1] = fpucw;
  ctx.sp = control;
}

void switch_fiber(FiberContext& from, FiberContext& to) { histgpu_emu_switch(&from.sp, to.sp); }

}  // namespace histgpu::simt::emu

#else

namespace histgpu::simt::emu {

namespace {
struct Start {
  void (*entry)(void*);
  void* arg;
};
void trampoline(unsigned hi, unsigned lo) {
  auto* s = reinterpret_cast<Start*>((static_cast<std::uintptr_t>(hi) << 32) | lo);
  s->entry(s->arg);
}
}  // namespace

void make_fiber(FiberContext& ctx, void* stack, std::size_t size, void (*entry)(void*), void* arg) {
  // The Start record lives at the bottom of the fiber's own stack.
  auto* s = static_cast<Start*>(stack);
  s->entry = entry;
  s->arg = arg;
  getcontext(&ctx.uc);
  ctx.uc.uc_stack.ss_sp = static_cast<char*>(stack) + 64;
  ctx.uc.uc_stack.ss_size = size - 64;
  ctx.uc.uc_link = nullptr;
  const auto p = reinterpret_cast<std::uintptr_t>(s);
  makecontext(&ctx.uc, reinterpret_cast<void (*)()>(&trampoline), 2, static_cast<unsigned>(p >> 32),
              static_cast<unsigned>(p & 0xffffffffu));
}

void switch_fiber(FiberContext& from, FiberContext& to) { swapcontext(&from.uc, &to.uc); }

}  // namespace histgpu::simt::emu

#endif
