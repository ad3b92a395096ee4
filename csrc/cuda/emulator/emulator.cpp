// The SIMT emulator (see emulator.hpp).
#include "cuda/emulator/emulator.hpp"

#include <setjmp.h>
#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <mutex>
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

// A guarded region: [guard page][... data ...][guard page], the data ending at the second one.
struct Guarded {
  char* base = nullptr;  // the mapping
  std::size_t mapped = 0;
  unsigned char* data = nullptr;
  std::size_t size = 0;
};

std::size_t page_size() {
  static const std::size_t p = static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
  return p;
}

Guarded map_guarded(std::size_t bytes, std::size_t align) {
  const std::size_t page = page_size();
  const std::size_t rounded = (bytes + align - 1) / align * align;
  const std::size_t body = (rounded + page - 1) / page * page;
  Guarded g;
  g.mapped = body + 2 * page;
  void* p = mmap(nullptr, g.mapped, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) throw std::bad_alloc();
  g.base = static_cast<char*>(p);
  if (body && mprotect(g.base + page, body, PROT_READ | PROT_WRITE) != 0) {
    munmap(p, g.mapped);
    throw std::bad_alloc();
  }
  g.data = reinterpret_cast<unsigned char*>(g.base + page + body - rounded);
  g.size = rounded;
  return g;
}

void unmap_guarded(Guarded& g) {
  if (g.base) munmap(g.base, g.mapped);
  g = Guarded{};
}

struct Block {
  LaunchConfig config;
  unsigned rank = 0;
  void (*thread_main)(void*) = nullptr;
  void* ctx = nullptr;
  std::vector<Thread> threads;
  std::vector<Warp> warps;
  Guarded dynamic, fixed;
  FiberContext scheduler;
  unsigned live = 0, at_barrier = 0;
  std::exception_ptr error;
  std::string problem;
};

thread_local Block* g_block = nullptr;
thread_local Thread* g_thread = nullptr;
thread_local Stacks g_stacks;
thread_local Counters g_counters;

// A memory fault while this thread runs a kernel jumps back to its launch (see launch()).
thread_local sigjmp_buf* g_fault_jump = nullptr;
thread_local void* g_fault_addr = nullptr;
struct sigaction g_previous_segv, g_previous_bus;
std::once_flag g_handlers_once;

void on_fault(int sig, siginfo_t* info, void* uctx) {
  if (g_fault_jump && g_block) {
    g_fault_addr = info->si_addr;
    siglongjmp(*g_fault_jump, 1);
  }
  // Not a kernel's: hand the signal back to whoever handled it before; returning re-runs the
  // faulting instruction under that handler.
  sigaction(sig, sig == SIGBUS ? &g_previous_bus : &g_previous_segv, nullptr);
  (void)uctx;
}

void install_fault_handlers() {
  std::call_once(g_handlers_once, [] {
    struct sigaction sa;
    std::memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = &on_fault;
    sa.sa_flags = SA_SIGINFO | SA_NODEFER;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGSEGV, &sa, &g_previous_segv);
    sigaction(SIGBUS, &sa, &g_previous_bus);
  });
}

std::string describe_fault(const Block& b, const void* addr) {
  const auto a = reinterpret_cast<std::uintptr_t>(addr);
  auto where = [&](const Guarded& g, const char* what) -> std::string {
    const auto lo = reinterpret_cast<std::uintptr_t>(g.base), hi = lo + g.mapped;
    if (!g.base || a < lo || a >= hi) return "";
    const auto start = reinterpret_cast<std::uintptr_t>(g.data);
    const long long off = static_cast<long long>(a) - static_cast<long long>(start);
    return std::string(" (") + what + " shared memory, offset " + std::to_string(off) + " of the " +
           std::to_string(g.size) + " bytes the launch has)";
  };
  std::string in = where(b.dynamic, "dynamic");
  if (in.empty()) in = where(b.fixed, "static");
  char buf[32];
  std::snprintf(buf, sizeof buf, "%p", addr);
  return "illegal address " + std::string(buf) + in + " in block " + std::to_string(b.rank) +
         (g_thread ? ", thread " + std::to_string(g_thread->rank) : std::string());
}

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
  // A barrier is for every thread of the block: one that exits while others wait at one has
  // skipped it (undefined on a GPU, where it may hang or corrupt the barrier).
  if (b->at_barrier && b->problem.empty())
    b->problem = "thread " + std::to_string(t->rank) + " of block " + std::to_string(b->rank) +
                 " exited while other threads wait at a barrier it never reached";
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
  std::memset(b.dynamic.data, kGarbage, b.dynamic.size);
  std::memset(b.fixed.data, kGarbage, b.fixed.size);
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
  install_fault_handlers();
  Block b;
  b.config = config;
  b.thread_main = thread_main;
  b.ctx = ctx;
  b.dynamic = map_guarded(config.dynamic_smem, 16);
  b.fixed = map_guarded(config.static_smem, 16);
  struct Unmap {
    Block& b;
    ~Unmap() {
      unmap_guarded(b.dynamic);
      unmap_guarded(b.fixed);
    }
  } unmap{b};
  sigjmp_buf jump;
  if (sigsetjmp(jump, 1) != 0) {
    // A kernel touched memory it must not: the block's fibers are abandoned where they stand.
    const std::string what = describe_fault(b, g_fault_addr);
    g_fault_jump = nullptr;
    g_block = nullptr;
    g_thread = nullptr;
    throw std::runtime_error("histgpu emulator: " + what);
  }
  g_fault_jump = &jump;
  for (unsigned r = 0; r < config.grid; ++r) {
    b.rank = r;
    run_block(b);
    if (b.error || !b.problem.empty()) break;
  }
  g_fault_jump = nullptr;
  if (b.error) std::rethrow_exception(b.error);
  if (!b.problem.empty()) throw std::runtime_error("histgpu emulator: " + b.problem);
}

namespace {
std::mutex g_alloc_mu;
std::vector<Guarded>& live_allocations() {
  static auto* v = new std::vector<Guarded>;  // never destroyed: freed blocks may outlive statics
  return *v;
}
}  // namespace

void* guarded_alloc(std::size_t bytes, unsigned char fill) {
  Guarded g = map_guarded(bytes, 256);
  std::memset(g.data, fill, g.size);
  std::lock_guard<std::mutex> lock(g_alloc_mu);
  live_allocations().push_back(g);
  return g.data;
}

void guarded_free(void* p) {
  if (!p) return;
  std::lock_guard<std::mutex> lock(g_alloc_mu);
  auto& v = live_allocations();
  for (auto it = v.begin(); it != v.end(); ++it)
    if (it->data == p) {
      unmap_guarded(*it);
      v.erase(it);
      return;
    }
}

unsigned thread_rank() { return g_thread->rank; }
unsigned block_rank() { return g_block->rank; }
unsigned block_size() { return g_block->config.block; }
unsigned grid_size() { return g_block->config.grid; }
unsigned char* dynamic_smem() { return g_block->dynamic.data; }
void* static_smem() { return g_block->fixed.data; }

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
