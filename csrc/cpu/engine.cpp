#include "cpu/engine.hpp"

#include <algorithm>
#include <atomic>
#include <cstring>
#include <limits>
#include <memory>
#include <stdexcept>

#include "core/ordered.hpp"
#include "core/patterns.hpp"
#include "cpu/pool.hpp"

namespace histgpu::cpu {

namespace {

// Fewest elements worth waking one more thread for, per pass: a range pass reads faster than
// the others count, so it needs more work before a second thread pays.
constexpr std::uint64_t kMinPerThreadRange = std::uint64_t(1) << 18;
constexpr std::uint64_t kMinPerThreadCount = std::uint64_t(1) << 16;
// Chunks handed out to the threads: small enough that a thread slowed down by another process
// leaves its share to the others, large enough that taking one costs nothing.
constexpr std::uint64_t kMaxChunk = std::uint64_t(1) << 16;
// Private counters of all threads together stay under this many bytes.
constexpr std::uint64_t kCounterBudget = std::uint64_t(1) << 30;
static_assert(kMaxChunk % kBlock == 0, "chunks are whole blocks");

template <class K> bool is_native(DType t) {
  return std::is_same_v<K, float> ? t == DType::Float32 : t == DType::Float64;
}

template <class K> void convert(const KernelTable& kt, DType t, const char* p, std::int64_t s,
                                std::size_t n, K* out) {
  if constexpr (std::is_same_v<K, float>) kt.to_f32(t, p, s, n, out);
  else kt.to_f64(t, p, s, n, out);
}

// Calls piece(p, stride, m) for the elements [a, b) of the view in row-major order, once per
// row or part of a row: m elements at p, `stride` bytes apart.
template <class F> void for_rows(const StridedView& v, std::uint64_t a, std::uint64_t b, F&& piece) {
  const int nd = v.ndim;
  const auto inner = static_cast<std::uint64_t>(v.shape[nd - 1]);
  const std::int64_t s = v.strides[nd - 1];
  std::uint64_t row = a / inner, col = a % inner;
  while (a < b) {
    const std::uint64_t len = std::min(inner - col, b - a);
    std::int64_t off = static_cast<std::int64_t>(col) * s;
    std::uint64_t r = row;
    for (int d = nd - 2; d >= 0; --d) {
      const auto extent = static_cast<std::uint64_t>(v.shape[d]);
      off += static_cast<std::int64_t>(r % extent) * v.strides[d];
      r /= extent;
    }
    piece(v.base + off, s, len);
    a += len;
    ++row;
    col = 0;
  }
}

// Calls f(block, m) for the elements [a, b) of the view in row-major order: pointers into the
// data where a row is long, contiguous, aligned and of the kernel type (at most kMaxDirect
// values at a time); otherwise values are converted into `buf` (kBlock values), packing several
// short rows into one block so that kernels never run on a handful of values.
template <class K, std::size_t kMaxDirect = kBlock, class F>
void for_blocks(const StridedView& v, const KernelTable& kt, std::uint64_t a, std::uint64_t b,
                K* buf, F&& f) {
  std::size_t fill = 0;  // values waiting in buf
  auto flush = [&] {
    if (fill) f(static_cast<const K*>(buf), fill);
    fill = 0;
  };
  for_rows(v, a, b, [&](const char* p, std::int64_t s, std::uint64_t len) {
    // Short rows are packed into blocks, unless the row is all there is to read.
    const bool direct = is_native<K>(v.dtype) && s == static_cast<std::int64_t>(sizeof(K)) &&
                        reinterpret_cast<std::uintptr_t>(p) % sizeof(K) == 0 && (len >= kBlock || len == b - a);
    if (direct) flush();
    for (std::uint64_t done = 0; done < len;) {
      const char* q = p + static_cast<std::int64_t>(done) * s;
      if (direct) {
        const auto m = static_cast<std::size_t>(std::min<std::uint64_t>(kMaxDirect, len - done));
        f(reinterpret_cast<const K*>(q), m);
        done += m;
      } else {
        const auto m = static_cast<std::size_t>(std::min<std::uint64_t>(kBlock - fill, len - done));
        convert<K>(kt, v.dtype, q, s, m, buf + fill);
        fill += m;
        done += m;
        if (fill == kBlock) flush();
      }
    }
  });
  flush();
}

// Threads for n elements: at most `requested`, each with at least min_per_thread elements,
// and all their private counters within the budget.
int threads_for(std::uint64_t n, int requested, std::uint64_t min_per_thread, std::uint64_t counter_bytes_per_thread) {
  std::uint64_t t = std::max(1, requested);
  t = std::min<std::uint64_t>(t, std::max<std::uint64_t>(1, n / min_per_thread));
  while (t > 1 && t * counter_bytes_per_thread > kCounterBudget) --t;
  return static_cast<int>(t);
}

// Chunk size for n elements over nt threads: whole blocks, about 16 chunks per thread or more.
std::uint64_t chunk_for(std::uint64_t n, int nt) {
  const std::uint64_t want = n / (static_cast<std::uint64_t>(nt) * 16);
  const std::uint64_t blocks = std::max<std::uint64_t>(1, (want + kBlock / 2) / kBlock);
  return std::min(kMaxChunk, blocks * kBlock);
}

// Runs work(slot, first, last) over [0, n) in chunks on nt threads (nt slots).
template <class Work> void parallel_chunks(int nt, std::uint64_t n, Work&& work) {
  for_chunks(nt, n, chunk_for(n, nt), std::forward<Work>(work));
}

// out[i] += the sum over `lanes` private copies of counter i (copy l at h + l * stride), i < n.
void add_lanes(const std::uint64_t* h, int lanes, std::size_t stride, std::size_t n, std::uint64_t* out) {
  for (int l = 0; l < lanes; ++l)
    for (std::size_t i = 0; i < n; ++i) out[i] += h[l * stride + i];
}

template <class K> RangeStats to_stats(const RangeAcc<K>& acc) {
  RangeStats s;
  s.num = acc.num;
  s.nan = acc.nan;
  s.posinf = acc.posinf;
  s.neginf = acc.neginf;
  if (acc.num) {
    s.min = static_cast<double>(from_ordered_key<K>(acc.kmin));
    s.max = static_cast<double>(from_ordered_key<K>(acc.kmax));
  }
  return s;
}

template <class K> void range_kernel(const KernelTable& kt, const K* x, std::size_t m, RangeAcc<K>& acc) {
  if constexpr (std::is_same_v<K, float>) kt.range_f32(x, m, acc);
  else kt.range_f64(x, m, acc);
}

// A thread's conversion buffer, made by the thread that uses it, when it first needs it (left
// uninitialised: every value is written before it is read).
template <class K> struct Scratch {
  std::unique_ptr<K[]> buf;
  K* get() {
    if (!buf) buf.reset(new K[kBlock]);
    return buf.get();
  }
};

template <class K> RangeStats range_impl(const StridedView& v, const KernelTable& kt, int threads) {
  const std::uint64_t n = v.size();
  const int nt = threads_for(n, threads, kMinPerThreadRange, 0);
  std::vector<RangeAcc<K>> accs(nt);
  std::vector<Scratch<K>> scratch(nt);
  parallel_chunks(nt, n, [&](int t, std::uint64_t a, std::uint64_t b) {
    RangeAcc<K>& acc = accs[t];
    for_blocks<K>(v, kt, a, b, scratch[t].get(), [&](const K* x, std::size_t m) { range_kernel<K>(kt, x, m, acc); });
  });
  for (int t = 1; t < nt; ++t) accs[0].merge(accs[t]);
  return to_stats(accs[0]);
}

template <class K>
std::vector<std::uint64_t> count_impl(const StridedView& v, const KernelTable& kt, int threads,
                                      const V2Plan& plan, bool has_nonfinite, RangeStats* observed) {
  const std::vector<K>& thresholds = [&]() -> const std::vector<K>& {
    if constexpr (std::is_same_v<K, float>) return plan.thresholds_f32;
    else return plan.thresholds_f64;
  }();
  CountArgs<K> args;
  args.thresholds = thresholds.data();
  args.nb = static_cast<std::int32_t>(thresholds.size() - 1);
  // Private copies of the counters, so that repeated hits of one bucket do not wait on one
  // memory cell; two, which stay in L1 beside the streaming data up to a few thousand buckets
  // (four measured slower on data from memory, 0.60 against 0.47 ns per value at k = 1000).
  args.lanes = args.nb <= 4096 ? 2 : 1;
  args.skip_nonfinite = has_nonfinite;
  args.lo = static_cast<K>(plan.guess_lo);
  args.scale = static_cast<K>(plan.guess_scale);
  args.tolerance = static_cast<K>(plan.guess_tolerance);
  const std::uint64_t n = v.size();
  const std::size_t per_thread = static_cast<std::size_t>(args.lanes) * args.nb;
  const int nt = threads_for(n, threads, kMinPerThreadCount, per_thread * sizeof(std::uint64_t));
  std::vector<std::vector<std::uint64_t>> hists(nt);
  std::vector<RangeAcc<K>> seen(nt);
  std::vector<Scratch<K>> scratch(nt);
  parallel_chunks(nt, n, [&](int t, std::uint64_t a, std::uint64_t b) {
    std::vector<std::uint64_t>& h = hists[t];
    if (h.empty()) h.assign(per_thread + 1, 0);  // + the spare counter
    // Whole chunks at once where they lie in place: the one-hot counters then flush rarely.
    auto count = [&](const K* x, std::size_t m) {
      if constexpr (std::is_same_v<K, float>) kt.count_v2_f32(x, m, args, h.data());
      else kt.count_v2_f64(x, m, args, h.data());
    };
    for_blocks<K, kMaxChunk>(v, kt, a, b, scratch[t].get(), [&](const K* x, std::size_t m) {
      if (!observed) return count(x, m);
      for (std::size_t i = 0; i < m; i += kBlock) {  // block by block: the range reads it from cache
        const std::size_t len = std::min(kBlock, m - i);
        range_kernel<K>(kt, x + i, len, seen[t]);
        count(x + i, len);
      }
    });
  });
  if (observed) {
    for (int t = 1; t < nt; ++t) seen[0].merge(seen[t]);
    *observed = to_stats(seen[0]);
  }
  // Every thread's private copies of the nb counters, summed (the spare counter left out).
  std::vector<std::uint64_t> counts(args.nb, 0);
  for (const auto& h : hists)
    if (!h.empty()) add_lanes(h.data(), args.lanes, args.nb, args.nb, counts.data());
  return counts;
}

template <class K> V1Raw v1_impl(const StridedView& v, const KernelTable& kt, int threads) {
  static const std::vector<K> thresholds = [] {
    std::vector<K> t = v1_thresholds<K>();
    t.push_back(std::numeric_limits<K>::infinity());  // T[nb + 1]: see CountArgs
    return t;
  }();
  static const std::vector<std::int32_t> guess32(v1_guess_table<K>().begin(), v1_guess_table<K>().end());
  CountArgs<K> args;
  args.thresholds = thresholds.data();
  args.nb = static_cast<std::int32_t>(thresholds.size() - 2);
  const std::uint64_t n = v.size();
  // Two counter copies (with four, 50 KiB, the counters no longer stay in L1); one for a small
  // tensor, where zeroing and adding up a second copy costs more than it saves.
  args.lanes = n >= (1u << 14) ? 2 : 1;
  args.guess_table = v1_guess_table<K>().data();
  args.guess_table32 = guess32.data();
  const std::size_t stride = static_cast<std::size_t>(args.nb) + 1;
  const std::size_t per_thread = static_cast<std::size_t>(args.lanes) * stride;
  const int nt = threads_for(n, threads, kMinPerThreadCount, 0);
  std::vector<std::vector<std::uint64_t>> hists(nt);
  std::vector<std::unique_ptr<V1Acc<K>>> accs(nt);
  std::vector<Scratch<K>> scratch(nt);
  parallel_chunks(nt, n, [&](int t, std::uint64_t a, std::uint64_t b) {
    std::vector<std::uint64_t>& h = hists[t];
    if (h.empty()) {
      h.assign(per_thread, 0);
      accs[t] = std::make_unique<V1Acc<K>>();
    }
    V1Acc<K>& acc = *accs[t];
    for_blocks<K>(v, kt, a, b, scratch[t].get(), [&](const K* x, std::size_t m) {
      if constexpr (std::is_same_v<K, float>) kt.v1_f32(x, m, args, h.data(), acc);
      else kt.v1_f64(x, m, args, h.data(), acc);
    });
  });
  V1Raw raw;
  raw.counts.assign(args.nb, 0);
  RangeAcc<K> range;
  for (int t = 0; t < nt; ++t) {
    if (!accs[t]) continue;  // a thread that took no chunk
    add_lanes(hists[t].data(), args.lanes, stride, args.nb, raw.counts.data());  // "no bucket" left out
    range.merge(accs[t]->range);
    if constexpr (std::is_same_v<K, float>) fold_fast_bins(*accs[t]);
    accs[t]->sums.fold_into(raw.sum, raw.sumsq);
  }
  raw.stats = to_stats(range);
  return raw;
}

// ---- the raw-pattern path ------------------------------------------------------------------

// One thread's pattern counters: 32-bit copies the kernels add to, folded into 64-bit totals
// before any of them can overflow.
struct PatternSlot {
  std::vector<std::uint32_t> narrow;  // copies * space
  std::vector<std::uint64_t> wide;    // space, made at the first fold
  std::uint64_t since_fold = 0;       // elements counted into `narrow`
  std::vector<std::uint8_t> buf;      // gathered elements of strided rows

  void fold(std::size_t space) {
    if (wide.empty()) wide.assign(space, 0);
    const std::size_t copies = narrow.size() / space;
    for (std::size_t c = 0; c < copies; ++c)
      for (std::size_t p = 0; p < space; ++p) wide[p] += narrow[c * space + p];
    std::fill(narrow.begin(), narrow.end(), 0u);
    since_fold = 0;
  }
};

// Counts the bit patterns of [a, b) of the view (8- or 16-bit elements) into slot s.
void count_patterns_range(const StridedView& v, const KernelTable& kt, std::uint64_t a, std::uint64_t b,
                          PatternSlot& s) {
  const std::size_t size = dtype_size(v.dtype);
  const std::size_t space = pattern_space(v.dtype);
  const int copies = size == 2 ? kPatternCopies16 : kPatternCopies8;
  if (s.narrow.empty()) s.narrow.assign(space * copies, 0u);
  if (s.since_fold + (b - a) > std::numeric_limits<std::uint32_t>::max()) s.fold(space);
  s.since_fold += b - a;
  auto kernel = [&](const void* p, std::size_t m) {
    if (size == 2) kt.patterns16(static_cast<const std::uint16_t*>(p), m, s.narrow.data());
    else kt.patterns8(static_cast<const std::uint8_t*>(p), m, s.narrow.data());
  };
  for_rows(v, a, b, [&](const char* p, std::int64_t stride, std::uint64_t len) {
    const bool direct = stride == static_cast<std::int64_t>(size) && reinterpret_cast<std::uintptr_t>(p) % size == 0;
    if (direct) {
      kernel(p, static_cast<std::size_t>(len));
      return;
    }
    if (s.buf.empty()) s.buf.resize(kBlock * 2);
    for (std::uint64_t done = 0; done < len;) {  // gather, then count
      const auto m = static_cast<std::size_t>(std::min<std::uint64_t>(kBlock, len - done));
      for (std::size_t i = 0; i < m; ++i)
        std::memcpy(s.buf.data() + i * size, p + static_cast<std::int64_t>(done + i) * stride, size);
      kernel(s.buf.data(), m);
      done += m;
    }
  });
}

}  // namespace

void fold_fast_bins(V1Acc<float>& acc) {
  FastExactBinsF32& f = acc.fast;
  if (f.pending == 0) return;  // nothing was added since the last fold
  for (int c = 0; c < FastExactBinsF32::kCopies; ++c) {
    for (int e = 0; e < 256; ++e) {
      acc.sums.sum[e] += f.sum[c][e];
      acc.sums.sumsq[e] += f.sumsq[c][e];
      f.sum[c][e] = 0;
      f.sumsq[c][e] = 0;
    }
  }
  f.pending = 0;
}

RangeStats CpuEngine::range(const StridedView& view) {
  if (view.size() == 0) return RangeStats{};
  return kernel_type(view.dtype) == KernelType::F32 ? range_impl<float>(view, k_, threads_)
                                                    : range_impl<double>(view, k_, threads_);
}

std::vector<std::uint64_t> CpuEngine::count_v2(const StridedView& view, const V2Plan& plan,
                                               bool has_nonfinite, RangeStats* observed) {
  if (plan.kernel == KernelType::F32)
    return count_impl<float>(view, k_, threads_, plan, has_nonfinite, observed);
  return count_impl<double>(view, k_, threads_, plan, has_nonfinite, observed);
}

V1Raw CpuEngine::v1(const StridedView& view) {
  if (view.size() == 0) {
    V1Raw raw;
    raw.counts.assign(v1_default_limits().size(), 0);
    return raw;
  }
  return kernel_type(view.dtype) == KernelType::F32 ? v1_impl<float>(view, k_, threads_)
                                                    : v1_impl<double>(view, k_, threads_);
}

bool CpuEngine::count_patterns(const StridedView& view, std::vector<std::uint64_t>& counts) {
  if (!has_pattern_path(view.dtype) || pattern_min16_ < 0) return false;
  const std::uint64_t n = view.size();
  if (n == 0 || (dtype_size(view.dtype) == 2 && n < static_cast<std::uint64_t>(pattern_min16_))) return false;
  const std::size_t space = pattern_space(view.dtype);
  const std::uint64_t slot_bytes = space * 4 * (dtype_size(view.dtype) == 2 ? kPatternCopies16 : kPatternCopies8);
  const int nt = threads_for(n, threads_, std::max<std::uint64_t>(kMinPerThreadCount, 4 * space), slot_bytes);
  std::vector<PatternSlot> slots(nt);
  parallel_chunks(nt, n, [&](int t, std::uint64_t a, std::uint64_t b) { count_patterns_range(view, k_, a, b, slots[t]); });
  counts.assign(space, 0);
  for (PatternSlot& s : slots) {
    if (s.narrow.empty()) continue;  // a thread that took no chunk
    if (!s.wide.empty()) {
      s.fold(space);
      for (std::size_t p = 0; p < space; ++p) counts[p] += s.wide[p];
      continue;
    }
    const std::size_t copies = s.narrow.size() / space;
    for (std::size_t c = 0; c < copies; ++c)
      for (std::size_t p = 0; p < space; ++p) counts[p] += s.narrow[c * space + p];
  }
  return true;
}

std::uint64_t CpuEngine::read_all(const StridedView& view) {
  const std::uint64_t n = view.size();
  const auto size = static_cast<std::int64_t>(dtype_size(view.dtype));
  if (view.ndim != 1 || (n > 1 && view.strides[0] != size))
    throw std::invalid_argument("histgpu: read_all takes contiguous views");
  const int nt = threads_for(n, threads_, kMinPerThreadRange, 0);
  std::vector<std::uint64_t> out(nt, 0);
  parallel_chunks(nt, n, [&](int t, std::uint64_t a, std::uint64_t b) {
    out[t] ^= k_.read_bytes(view.base + a * size, static_cast<std::size_t>((b - a) * size));
  });
  std::uint64_t x = 0;
  for (std::uint64_t v : out) x ^= v;
  return x;
}

namespace {

// results[i] = one(engine, i) for every tensor i of a batch: a tensor of at least `whole`
// values is split across every thread (the engine `all`), one after another; the rest are
// handed out whole, largest first (so that the last one taken is a small one and no thread
// waits long for another), to the threads, each counting with a one-thread engine. Every
// result equals the per-tensor call's: results do not depend on the thread count.
template <class R, class One>
std::vector<R> across_tensors(CpuEngine& all, std::int64_t pattern_min16, const std::vector<std::uint64_t>& sizes,
                              One one) {
  std::vector<R> out(sizes.size());
  const int threads = all.threads();
  const std::uint64_t whole = 4 * kMinPerThreadCount;
  std::vector<std::size_t> small;
  std::uint64_t small_total = 0;
  for (std::size_t i = 0; i < sizes.size(); ++i) {
    if (threads > 1 && sizes[i] >= whole) {
      out[i] = one(all, i);
    } else {
      small.push_back(i);
      small_total += sizes[i];
    }
  }
  if (small.empty()) return out;
  std::stable_sort(small.begin(), small.end(), [&](std::size_t a, std::size_t b) { return sizes[a] > sizes[b]; });
  CpuEngine single(1, all.kernels());
  single.set_pattern_min16(pattern_min16);
  const int nt = std::min<int>(threads_for(small_total, threads, kMinPerThreadCount, 0), static_cast<int>(small.size()));
  std::atomic<std::size_t> next{0};
  run_participants(nt, [&](int) {
    for (std::size_t j; (j = next.fetch_add(1, std::memory_order_relaxed)) < small.size();) out[small[j]] = one(single, small[j]);
  });
  return out;
}

}  // namespace

std::vector<V2Result> CpuEngine::v2_many(const std::vector<BatchItem>& items) {
  std::vector<std::uint64_t> sizes(items.size());
  for (std::size_t i = 0; i < items.size(); ++i) sizes[i] = items[i].view.size();
  return across_tensors<V2Result>(*this, pattern_min16_, sizes, [&](CpuEngine& e, std::size_t i) {
    return histogram_v2(e, items[i].view, items[i].k);
  });
}

std::vector<V1Result> CpuEngine::v1_many(const std::vector<StridedView>& views) {
  std::vector<std::uint64_t> sizes(views.size());
  for (std::size_t i = 0; i < views.size(); ++i) sizes[i] = views[i].size();
  return across_tensors<V1Result>(*this, pattern_min16_, sizes,
                                  [&](CpuEngine& e, std::size_t i) { return histogram_v1(e, views[i]); });
}

}  // namespace histgpu::cpu
