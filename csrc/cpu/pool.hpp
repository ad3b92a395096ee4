// The CPU engine's persistent worker threads and dynamic work splitting.
//
// Starting threads per call costs tens of microseconds and splitting work into one equal part
// per thread lets one busy core hold the whole call up. Instead, a process-wide pool keeps its
// workers asleep between calls, and a call hands out fixed-size chunks of its work from an atomic
// counter: whoever is free takes the next chunk, the calling thread included. Each participant
// accumulates into its own slot (counts are integers, min/max selections, sums exact), so the
// result never depends on which thread took which chunk.
#pragma once
#include <atomic>
#include <cstdint>
#include <functional>

namespace histgpu::cpu {

// Runs body(slot) on up to `participants` threads at once: the caller as slot 0, plus pool
// workers that are free to join (slots 1, 2, ...; a worker busy with another call's work simply
// does not join, and its share is done by the others). Returns when every participant that
// joined has returned; rethrows the first exception any of them threw. Safe to call from many
// threads at once and after fork() (the child starts a fresh pool).
void run_participants(int participants, const std::function<void(int slot)>& body);

// Hands out [0, n) in chunks of `chunk` elements (the last one shorter) to up to `participants`
// threads: work(slot, first, last) is called once per chunk, by whichever participant takes it.
template <class Work>
void for_chunks(int participants, std::uint64_t n, std::uint64_t chunk, Work&& work) {
  if (participants <= 1 || n <= chunk) {
    for (std::uint64_t a = 0; a < n; a += chunk) work(0, a, n - a < chunk ? n : a + chunk);
    return;
  }
  std::atomic<std::uint64_t> next{0};
  run_participants(participants, [&](int slot) {
    for (;;) {
      const std::uint64_t a = next.fetch_add(chunk, std::memory_order_relaxed);
      if (a >= n) return;
      work(slot, a, n - a < chunk ? n : a + chunk);
    }
  });
}

}  // namespace histgpu::cpu
