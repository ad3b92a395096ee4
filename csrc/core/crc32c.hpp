// CRC-32C (Castagnoli), the checksum of TensorFlow's record (event file) framing.
#pragma once
#include <cstddef>
#include <cstdint>

namespace histgpu {

// CRC-32C of n bytes: the SSE4.2 crc32 instruction where the CPU has it, else a table.
std::uint32_t crc32c(const void* data, std::size_t n);

}  // namespace histgpu
