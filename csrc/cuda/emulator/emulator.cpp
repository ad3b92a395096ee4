// The SIMT emulator (see emulator.hpp).
#include "cuda/emulator/emulator.hpp"

#include <sys/mman.h>

#include <cstring>
#include <exception>
#include <stdexcept>
#include <string>
#include <vector>

#include "cuda/emulator/fiber.hpp"

namespace histgpu::simt::emu {

namespace {

constexpr unsigned kWarp = 32;
constexpr std::size_t kStackBytes = std::size_t(128) << 10;
constexpr std::size_t kGuardBytes = std::size_t(4) << 10;
constexpr unsigned char kGarbage = 0xA5;  // what shared memory holds before a kernel writes it

enum class State { Ready, AtBarrier, InCollective, Done };
enum class Op { None, Shuffle, Match, Ballot };

struct Block;

struct Thread {
  FiberContext ctx;
  Block* block = nullptr;
  unsigned rank = 0;
  State state = State::Ready;
  Op op = Op::None;
  int arg = 0;                // the shuffle's lane mask
  std::uint64_t in = 0, out = 0;
};

struct Warp {
  unsigned arrived = 0;
  Op op = Op::None;
  int arg = 0;
};

// Fiber stacks, kept per OS thread and reused by every block and launch (guard page below each).
struct Stacks {
  std::vector<char*> stacks;
  ~Stacks() {
    for (char* s : stacks) munmap(s - kGuardBytes, kStackBytes + kGuardBytes);
  }
  char* get(std::size_t i) {
    while (stacks.size() <= i) {
      void* p = mmap(nullptr, kStackBytes + kGuardBytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
      if (p == MAP_FAILED) throw std::bad_alloc();
      mprotect(p, kGuardBytes, PROT_NONE);  // a stack overflow faults instead of corrupting
      stacks.push_back(static_cast<char*>(p) + kGuardBytes);
    }
    return stacks[i];
  }
};

struct Block {
  LaunchConfig config;
  unsigned rank = 0;
  void (*thread_main)(void*) = nullptr;
  void* ctx = nullptr;
  std::vector<Thread> threads;
  std::vector<Warp> warps;
  std::vector<unsigned char> dynamic, fixed;
  FiberContext scheduler;
  unsigned live = 0, at_barrier = 0;
  std::exception_ptr error;
  std::string problem;
};

thread_local Block* g_block = nullptr;
thread_local Thread* g_thread = nullptr;
thread_local Stacks g_stacks;
thread_local Counters g_counters;

void yield() {
  Thread* t = g_thread;
  ++g_counters.switches;
  switch_fiber(t->ctx, t->block->scheduler);
}

void fiber_main(void* arg) {
  auto* t = static_cast<Thread*>(arg);
  Block* b = t->block;
  try {
    b->thread_main(b->ctx);
  } catch (...) {
    if (!b->error) b->error = std::current_exception();
  }
  t->state = State::Done;
  --b->live;
  // A barrier that waited only on threads that have exited now releases.
  if (b->live && b->at_barrier == b->live) {
    for (Thread& o : b->threads)
      if (o.state == State::AtBarrier) o.state = State::Ready;
    b->at_barrier = 0;
  }
  for (;;) switch_fiber(t->ctx, b->scheduler);  // never resumed
}

void fail(const std::string& what) {
  Block* b = g_block;
  if (b->problem.empty()) b->problem = what;
}

// The lanes of `t`'s warp meet in one collective; the last to arrive computes every result.
std::uint64_t collective(Op op, int arg, std::uint64_t in) {
  Thread* t = g_thread;
  Block* b = t->block;
  Warp& w = b->warps[t->rank / kWarp];
  if (w.arrived == 0) {
    w.op = op;
    w.arg = arg;
  } else if (w.op != op || w.arg != arg) {
    fail("lanes of warp " + std::to_string(t->rank / kWarp) + " of block " + std::to_string(b->rank) +
         " met in different warp collectives");
  }
  t->op = op;
  t->arg = arg;
  t->in = in;
  t->state = State::InCollective;
  if (++w.arrived == kWarp) {
    Thread* lanes = &b->threads[(t->rank / kWarp) * kWarp];
    for (unsigned l = 0; l < kWarp; ++l) {
      Thread& me = lanes[l];
      switch (op) {
        case Op::Shuffle: me.out = lanes[(l ^ static_cast<unsigned>(arg)) & (kWarp - 1)].in; break;
        case Op::Match: {
          std::uint64_t peers = 0;
          for (unsigned o = 0; o < kWarp; ++o)
            if (static_cast<std::uint32_t>(lanes[o].in) == static_cast<std::uint32_t>(me.in)) peers |= 1ull << o;
          me.out = peers;
          break;
        }
        case Op::Ballot: {
          std::uint64_t votes = 0;
          for (unsigned o = 0; o < kWarp; ++o)
            if (lanes[o].in) votes |= 1ull << o;
          me.out = votes;
          break;
        }
        default: break;
      }
      me.state = State::Ready;
    }
    w.arrived = 0;
  }
  yield();  // the results are read after every lane has had its turn
  return t->out;
}

void run_block(Block& b) {
  const unsigned n = b.config.block;
  b.threads.assign(n, Thread{});
  b.warps.assign((n + kWarp - 1) / kWarp, Warp{});
  b.dynamic.assign(b.config.dynamic_smem, kGarbage);
  b.fixed.assign(b.config.static_smem, kGarbage);
  b.live = n;
  b.at_barrier = 0;
  for (unsigned i = 0; i < n; ++i) {
    Thread& t = b.threads[i];
    t.block = &b;
    t.rank = i;
    make_fiber(t.ctx, g_stacks.get(i), kStackBytes, &fiber_main, &t);
  }
  g_block = &b;
  while (b.live) {
    bool ran = false;
    for (Thread& t : b.threads) {
      if (t.state != State::Ready) continue;
      ran = true;
      g_thread = &t;
      ++g_counters.switches;
      switch_fiber(b.scheduler, t.ctx);
      g_thread = nullptr;
    }
    if (!b.problem.empty() || b.error) break;
    if (!ran) {
      unsigned barrier = 0, coll = 0;
      for (const Thread& t : b.threads) {
        barrier += t.state == State::AtBarrier;
        coll += t.state == State::InCollective;
      }
      b.problem = "deadlock in block " + std::to_string(b.rank) + ": " + std::to_string(barrier) +
                  " threads wait at a barrier and " + std::to_string(coll) +
                  " in warp collectives that some lanes never reach";
      break;
    }
  }
  g_block = nullptr;
  g_counters.threads += n;
  ++g_counters.blocks;
}

}  // namespace

void launch(const LaunchConfig& config, void (*thread_main)(void*), void* ctx) {
  if (g_block) throw std::logic_error("histgpu emulator: a kernel launched from inside a kernel");
  if (config.block == 0 || config.block % kWarp != 0 || config.block > 1024)
    throw std::invalid_argument("histgpu emulator: blocks of 32 to 1024 threads, a multiple of 32");
  Block b;
  b.config = config;
  b.thread_main = thread_main;
  b.ctx = ctx;
  for (unsigned r = 0; r < config.grid; ++r) {
    b.rank = r;
    run_block(b);
    if (b.error) std::rethrow_exception(b.error);
    if (!b.problem.empty()) throw std::runtime_error("histgpu emulator: " + b.problem);
  }
}

unsigned thread_rank() { return g_thread->rank; }
unsigned block_rank() { return g_block->rank; }
unsigned block_size() { return g_block->config.block; }
unsigned grid_size() { return g_block->config.grid; }
unsigned char* dynamic_smem() { return g_block->dynamic.data(); }
void* static_smem() { return g_block->fixed.data(); }

void sync_block() {
  Thread* t = g_thread;
  Block* b = t->block;
  t->state = State::AtBarrier;
  if (++b->at_barrier == b->live) {
    for (Thread& o : b->threads)
      if (o.state == State::AtBarrier) o.state = State::Ready;
    b->at_barrier = 0;
  }
  yield();
}

std::uint64_t shfl_xor(std::uint64_t value, int lane_mask) { return collective(Op::Shuffle, lane_mask, value); }
std::uint32_t match_any(std::uint32_t value) {
  return static_cast<std::uint32_t>(collective(Op::Match, 0, value));
}
std::uint32_t ballot(bool predicate) { return static_cast<std::uint32_t>(collective(Op::Ballot, 0, predicate)); }

Counters counters() { return g_counters; }

}  // namespace histgpu::simt::emu
