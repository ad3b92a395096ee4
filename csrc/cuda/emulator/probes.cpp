// Small kernels that misbehave on purpose, run by the emulator for its own tests: each shows
// one check the emulator makes (tests/cuda/test_emulator.py).
#include <stdexcept>
#include <string>

#include "cuda/emulator/probes.hpp"
#include "cuda/simt.hpp"

namespace histgpu::simt::emu {

namespace {

void divergent_barrier(void*) {
  if (thread_rank() % 2 == 0) sync_block();  // half the block waits for the other half forever
}

void divergent_collective(void*) {
  if (lane_id() < 16) (void)ballot(true);  // half a warp in a collective
}

void mismatched_collective(void*) {
  if (lane_id() < 16) (void)ballot(true);
  else (void)match_any(1u);
}

void past_shared_memory(void* ctx) {
  auto* out = static_cast<unsigned*>(ctx);
  unsigned char* smem = dynamic_smem();
  if (thread_rank() == 0) *out = smem[static_cast<std::size_t>(block_size()) * 64 + 16];  // just past the end
}

void reads_shared_memory_unwritten(void* ctx) {
  auto* out = static_cast<unsigned*>(ctx);
  auto* smem = reinterpret_cast<unsigned*>(dynamic_smem());
  if (thread_rank() == 0) *out = smem[7];
}

void shuffles_and_barriers(void* ctx) {
  auto* out = static_cast<unsigned long long*>(ctx);
  auto* smem = reinterpret_cast<unsigned long long*>(dynamic_smem());
  unsigned long long v = thread_rank();
  for (int off = 16; off > 0; off /= 2) v += shfl_xor(v, off);  // each warp's sum
  if (lane_id() == 0) smem[thread_rank() / 32] = v;
  sync_block();
  if (thread_rank() == 0) {
    unsigned long long s = 0;
    for (unsigned w = 0; w < block_size() / 32; ++w) s += smem[w];
    out[block_rank()] = s;
  }
}

}  // namespace

std::string run_probe(const std::string& name) {
  LaunchConfig c;
  c.grid = 2;
  c.block = 128;
  c.dynamic_smem = 128 * 64;
  unsigned long long out[2] = {0, 0};
  void (*fn)(void*) = nullptr;
  if (name == "divergent_barrier") fn = &divergent_barrier;
  else if (name == "divergent_collective") fn = &divergent_collective;
  else if (name == "mismatched_collective") fn = &mismatched_collective;
  else if (name == "past_shared_memory") fn = &past_shared_memory;
  else if (name == "reads_shared_memory_unwritten") fn = &reads_shared_memory_unwritten;
  else if (name == "shuffles_and_barriers") fn = &shuffles_and_barriers;
  else throw std::invalid_argument("no emulator probe named " + name);
  try {
    launch(c, fn, out);
  } catch (const std::exception& e) {
    return std::string("raised: ") + e.what();
  }
  return "ok: " + std::to_string(out[0]) + " " + std::to_string(out[1]);
}

}  // namespace histgpu::simt::emu
