// The batch kernels and the planner compiled for the host and run by the emulator: the same
// templates (batch_kernel.cuh, passes/) that kernels.cu compiles for the GPU.
#include "cuda/kernels_host.hpp"

#include "cuda/batch_kernel.cuh"
#include "cuda/dispatch.hpp"
#include "cuda/emulator/emulator.hpp"

namespace histgpu::cuda {

namespace {

struct HostLaunch {
  const LaunchArgs* args;
  int smem;
};

template <DType D, bool C, class P> void thread_main(void* ctx) {
  const auto* l = static_cast<const HostLaunch*>(ctx);
  batch_block<D, C, P>(*l->args, l->smem, simt::emu::dynamic_smem(),
                       *static_cast<BlockShared*>(simt::emu::static_smem()));
}

struct HostLauncher {
  template <DType D, bool C, class P> void (*run())(void*) { return &thread_main<D, C, P>; }
};

struct PlanArgs {
  const DevTensor* tensors;
  int num_tensors;
  const DevStats* stats;
  DevPlan* plans;
  char* thresholds;
  std::uint64_t total;
};

void plan_main(void* ctx) {
  const auto* a = static_cast<const PlanArgs*>(ctx);
  plan_block(a->tensors, a->num_tensors, a->stats, a->plans, a->thresholds, a->total);
}

}  // namespace

void emulate_pass(Pass pass, DType dtype, bool contiguous, CountMode mode, const LaunchArgs& args, int grid,
                  int smem) {
  HostLauncher l;
  void (*fn)(void*) = dispatch(l, pass, dtype, contiguous, mode);
  HostLaunch ctx{&args, smem};
  simt::emu::LaunchConfig c;
  c.grid = static_cast<unsigned>(grid);
  c.block = static_cast<unsigned>(threads_per_block(pass));
  c.dynamic_smem = static_cast<std::size_t>(smem);
  c.static_smem = sizeof(BlockShared);
  simt::emu::launch(c, fn, &ctx);
}

void emulate_plan(const DevTensor* tensors, int num_tensors, const DevStats* stats, DevPlan* plans, char* thresholds,
                  std::uint64_t total, int grid) {
  if (total == 0 || num_tensors == 0) return;
  PlanArgs a{tensors, num_tensors, stats, plans, thresholds, total};
  simt::emu::LaunchConfig c;
  c.grid = static_cast<unsigned>(grid);
  c.block = kThreadsPerBlock;
  simt::emu::launch(c, &plan_main, &a);
}

}  // namespace histgpu::cuda
