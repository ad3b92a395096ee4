// Launch policy shared by the host side (workspace sizing, grouping, grids) and the kernels:
// one rule decides where a v2 count pass keeps its thresholds and counters, and the kernel of
// that mode is the one launched.
#pragma once
#include <cstdint>

#include "core/hd.hpp"
#include "core/thresholds.hpp"

namespace histgpu::cuda {

constexpr int kThreadsPerBlock = 256;
// Elements per chunk (a multiple of every vector width: 16 bytes of 1-byte elements). The
// blocks of a launch take contiguous runs of the batch's chunks.
constexpr std::uint64_t kChunk = std::uint64_t(1) << 16;
// Chunks per block at most, so that a block's 32-bit shared counters never overflow.
constexpr std::uint64_t kMaxChunksPerBlock = std::uint64_t(1) << 15;
// Dynamic shared memory a count pass asks for at most: every GPU since sm_80 offers this much
// to one block, and it leaves room for two blocks per multiprocessor on sm_86/sm_89.
constexpr std::uint64_t kCountSmemCap = 48 * 1024;

enum class Pass { Range = 0, Count = 1, V1 = 2 };

// Threads per block of a pass (the kernels' __launch_bounds__): the v1 pass's 71 KiB of shared
// memory admit only 3 blocks per multiprocessor, so its blocks are bigger.
HISTGPU_HD_CONSTEXPR int threads_per_block(Pass pass) { return pass == Pass::V1 ? 512 : kThreadsPerBlock; }

// Where the v2 count pass of k buckets keeps the threshold table T[0..k] and its counters.
enum class CountMode : int {
  LaneCounters = 0,   // T and 32 private u32 counters per bucket (one per lane) in shared memory
  SharedCounters = 1, // T and one u32 counter per bucket in shared memory (warp-aggregated adds)
  SharedTable = 2,    // T in shared memory, u64 counters in global memory (warp-aggregated adds)
  GlobalTable = 3,    // T and the counters in global memory (huge k)
};
constexpr int kCountModes = 4;

HISTGPU_HD_CONSTEXPR std::uint64_t align16(std::uint64_t v) { return (v + 15) & ~std::uint64_t(15); }

// Bytes of the threshold table of k buckets, padded to 16.
HISTGPU_HD_CONSTEXPR std::uint64_t table_bytes(std::int64_t k, int key_size) {
  return align16((static_cast<std::uint64_t>(k) + 1) * static_cast<std::uint64_t>(key_size));
}

HISTGPU_HD_CONSTEXPR std::uint64_t count_smem_bytes(CountMode mode, std::int64_t k, int key_size) {
  const std::uint64_t kk = static_cast<std::uint64_t>(k);
  switch (mode) {
    case CountMode::LaneCounters: return table_bytes(k, key_size) + kk * 32 * 4;
    case CountMode::SharedCounters: return table_bytes(k, key_size) + kk * 4;
    case CountMode::SharedTable: return table_bytes(k, key_size);
    default: return 0;
  }
}

// The first mode whose shared memory fits `cap` bytes (the rule for every count pass).
HISTGPU_HD_CONSTEXPR CountMode count_mode(std::int64_t k, int key_size, std::uint64_t cap = kCountSmemCap) {
  if (count_smem_bytes(CountMode::LaneCounters, k, key_size) <= cap) return CountMode::LaneCounters;
  if (count_smem_bytes(CountMode::SharedCounters, k, key_size) <= cap) return CountMode::SharedCounters;
  if (count_smem_bytes(CountMode::SharedTable, k, key_size) <= cap) return CountMode::SharedTable;
  return CountMode::GlobalTable;
}

// The v1 pass: TensorFlow's limits in shared memory as a guess table (13-bit key prefix ->
// first bucket of the prefix and the one threshold inside its span), one u32 counter per
// bucket, and for float64 the float64 thresholds.
constexpr int kV1GuessBits = v1_guess_bits<float>();  // core's table, the one the CPU reads too
constexpr std::uint64_t kV1GuessEntries = (std::uint64_t(1) << kV1GuessBits);

}  // namespace histgpu::cuda
