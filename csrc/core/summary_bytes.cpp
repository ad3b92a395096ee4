#include "core/summary_bytes.hpp"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <stdexcept>

#include "core/thresholds.hpp"

namespace histgpu {
namespace {

// Writes at a cursor into memory sized beforehand (appending 8 bytes at a time to a
// std::string cost more than counting the histogram's small tensors).
struct Cursor {
  char* p;
  void byte(int b) { *p++ = static_cast<char>(b); }
  void varint(std::uint64_t n) {
    for (; n >= 0x80; n >>= 7) byte(static_cast<int>((n & 0x7f) | 0x80));
    byte(static_cast<int>(n));
  }
  void raw(const void* src, std::size_t n) {
    std::memcpy(p, src, n);
    p += n;
  }
  void f64(double v) { raw(&v, 8); }  // little-endian, as x86-64 and protobuf have it
};

std::size_t varint_size(std::uint64_t n) {
  std::size_t s = 1;
  for (; n >= 0x80; n >>= 7) ++s;
  return s;
}

bool written(double v) {  // protobuf leaves out +0.0 (all bits zero) only; -0.0 is written
  std::uint64_t bits;
  std::memcpy(&bits, &v, 8);
  return bits != 0;
}

}  // namespace

std::optional<std::string> torch_layout_value(std::string_view tag, const V1Result& r) {
  const std::vector<double>& limits = v1_default_limits();
  const RangeStats& s = r.stats;
  if (s.num == 0) return std::nullopt;
  // A value's v1 bucket is the first limit above it (numpy.searchsorted, side="right").
  const auto bucket = [&](double x) {
    return static_cast<std::size_t>(std::upper_bound(limits.begin(), limits.end(), x) - limits.begin());
  };
  const std::size_t start = bucket(s.min), end = bucket(s.max) + 1;
  const std::size_t top = limits.size() - 1;  // v1's last bucket holds values >= the last edge
  if (start < 2 || end > top || end > r.counts.size()) return std::nullopt;
  if (r.counts[start] == 0 || r.counts[end - 1] == 0) return std::nullopt;  // never: min, max lie there
  const std::size_t n = end - start + 1;  // bins: the empty one before the support, then the support

  const double head[5] = {s.min, s.max, static_cast<double>(s.num), r.sum, r.sum_squares};
  std::size_t head_size = 0;
  for (double v : head) head_size += written(v) ? 9 : 0;
  const std::size_t array_bytes = 8 * n;
  const std::size_t histo_size = head_size + 2 * (1 + varint_size(array_bytes) + array_bytes);
  const std::size_t value_size = 1 + varint_size(tag.size()) + tag.size() + 1 + varint_size(histo_size) + histo_size;

  std::string out(1 + varint_size(value_size) + value_size, '\0');
  Cursor c{out.data()};
  c.byte(0x0a);  // Summary.value
  c.varint(value_size);
  c.byte(0x0a);  // Value.tag
  c.varint(tag.size());
  c.raw(tag.data(), tag.size());
  c.byte(0x2a);  // Value.histo
  c.varint(histo_size);
  const int keys[5] = {0x09, 0x11, 0x19, 0x21, 0x29};  // min, max, num, sum, sum_squares
  for (int i = 0; i < 5; ++i) {
    if (!written(head[i])) continue;
    c.byte(keys[i]);
    c.f64(head[i]);
  }
  c.byte(0x32);  // bucket_limit, packed: PyTorch's edges [start - 2, end - 1) = limits [start - 1, end)
  c.varint(array_bytes);
  c.raw(limits.data() + (start - 1), array_bytes);
  c.byte(0x3a);  // bucket, packed: the counts as doubles
  c.varint(array_bytes);
  for (std::size_t i = start - 1; i < end; ++i) c.f64(static_cast<double>(r.counts[i]));
  if (c.p != out.data() + out.size()) throw std::logic_error("histgpu: a summary value's size was mispredicted");
  return out;
}

}  // namespace histgpu
