// The read ceiling (compiled per instruction set; see isa.hpp): every byte loaded once, in the
// widest vectors this build has, four independent streams, the least work per byte possible.
// The result is the exclusive-or of the data as 64-bit words (a last partial word zero-padded),
// the same for every build and split, so long as every piece starts at a multiple of 8 bytes.
#include <cstring>

#include "cpu/kernels/isa.hpp"

namespace histgpu::cpu::HISTGPU_ISA {

std::uint64_t read_bytes(const char* p, std::size_t n) {
  std::size_t i = 0;
  std::uint64_t out = 0;
#if HISTGPU_HAVE_AVX512
  __m512i a = _mm512_setzero_si512(), b = a, c = a, d = a;
  for (; i + 256 <= n; i += 256) {
    a = _mm512_xor_si512(a, _mm512_loadu_si512(p + i));
    b = _mm512_xor_si512(b, _mm512_loadu_si512(p + i + 64));
    c = _mm512_xor_si512(c, _mm512_loadu_si512(p + i + 128));
    d = _mm512_xor_si512(d, _mm512_loadu_si512(p + i + 192));
  }
  alignas(64) std::uint64_t lanes[8];
  _mm512_store_si512(lanes, _mm512_xor_si512(_mm512_xor_si512(a, b), _mm512_xor_si512(c, d)));
  for (std::uint64_t l : lanes) out ^= l;
#elif HISTGPU_HAVE_AVX2
  __m256i a = _mm256_setzero_si256(), b = a, c = a, d = a;
  for (; i + 128 <= n; i += 128) {
    a = _mm256_xor_si256(a, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + i)));
    b = _mm256_xor_si256(b, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + i + 32)));
    c = _mm256_xor_si256(c, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + i + 64)));
    d = _mm256_xor_si256(d, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + i + 96)));
  }
  alignas(32) std::uint64_t lanes[4];
  _mm256_store_si256(reinterpret_cast<__m256i*>(lanes), _mm256_xor_si256(_mm256_xor_si256(a, b), _mm256_xor_si256(c, d)));
  for (std::uint64_t l : lanes) out ^= l;
#else
  std::uint64_t a = 0, b = 0, c = 0, d = 0, w[4];
  for (; i + 32 <= n; i += 32) {
    std::memcpy(w, p + i, 32);
    a ^= w[0];
    b ^= w[1];
    c ^= w[2];
    d ^= w[3];
  }
  out = a ^ b ^ c ^ d;
#endif
  for (; i + 8 <= n; i += 8) {
    std::uint64_t w;
    std::memcpy(&w, p + i, 8);
    out ^= w;
  }
  if (i < n) {  // a last partial word, zero-padded
    std::uint64_t w = 0;
    std::memcpy(&w, p + i, n - i);
    out ^= w;
  }
  return out;
}

}  // namespace histgpu::cpu::HISTGPU_ISA
