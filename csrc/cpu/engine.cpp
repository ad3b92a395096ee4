#include "cpu/engine.hpp"

#include <algorithm>
#include <cstring>
#include <limits>
#include <exception>
#include <thread>

#include "core/ordered.hpp"

namespace histgpu::cpu {

namespace {

// Below this many elements per thread, starting a thread costs more than it saves.
constexpr std::uint64_t kMinPerThread = std::uint64_t(1) << 18;
// Private counters of all threads together stay under this many bytes.
constexpr std::uint64_t kCounterBudget = std::uint64_t(1) << 30;

template <class K> bool is_native(DType t) {
  return std::is_same_v<K, float> ? t == DType::Float32 : t == DType::Float64;
}

template <class K> void convert(const KernelTable& kt, DType t, const char* p, std::int64_t s,
                                std::size_t n, K* out) {
  if constexpr (std::is_same_v<K, float>) kt.to_f32(t, p, s, n, out);
  else kt.to_f64(t, p, s, n, out);
}

// Calls f(block, m) for the elements [a, b) of the view in row-major order, in blocks of at
// most kBlock kernel-type values: pointers into the data where a row is long, contiguous,
// aligned and of the kernel type; otherwise values are converted into `buf`, packing several
// short rows into one block so that kernels never run on a handful of values.
template <class K, class F>
void for_blocks(const StridedView& v, const KernelTable& kt, std::uint64_t a, std::uint64_t b,
                K* buf, F&& f) {
  const int nd = v.ndim;
  const auto inner = static_cast<std::uint64_t>(v.shape[nd - 1]);
  const std::int64_t s = v.strides[nd - 1];
  std::size_t fill = 0;  // values waiting in buf
  auto flush = [&] {
    if (fill) f(static_cast<const K*>(buf), fill);
    fill = 0;
  };
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
    const char* p = v.base + off;
    const bool direct = is_native<K>(v.dtype) && s == static_cast<std::int64_t>(sizeof(K)) &&
                        reinterpret_cast<std::uintptr_t>(p) % sizeof(K) == 0 && len >= kBlock;
    if (direct) flush();
    for (std::uint64_t done = 0; done < len;) {
      const char* q = p + static_cast<std::int64_t>(done) * s;
      if (direct) {
        const auto m = static_cast<std::size_t>(std::min<std::uint64_t>(kBlock, len - done));
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
    a += len;
    ++row;
    col = 0;
  }
  flush();
}

int threads_for(std::uint64_t n, int requested, std::uint64_t counter_bytes_per_thread) {
  std::uint64_t t = std::max(1, requested);
  t = std::min<std::uint64_t>(t, std::max<std::uint64_t>(1, n / kMinPerThread));
  while (t > 1 && t * counter_bytes_per_thread > kCounterBudget) --t;
  return static_cast<int>(t);
}

// Runs work(thread_index, first, last) on `nt` threads over [0, n), split at block boundaries.
template <class Work> void parallel_ranges(int nt, std::uint64_t n, Work&& work) {
  if (nt <= 1) {
    work(0, std::uint64_t(0), n);
    return;
  }
  const std::uint64_t per = ((n / nt) + kBlock - 1) / kBlock * kBlock;
  std::vector<std::thread> pool;
  std::vector<std::exception_ptr> errors(nt);
  for (int t = 0; t < nt; ++t) {
    const std::uint64_t a = std::min(n, per * t), b = (t == nt - 1) ? n : std::min(n, per * (t + 1));
    pool.emplace_back([&, t, a, b] {
      try {
        work(t, a, b);
      } catch (...) {
        errors[t] = std::current_exception();
      }
    });
  }
  for (auto& th : pool) th.join();
  for (auto& e : errors)
    if (e) std::rethrow_exception(e);
}

// Sums every thread's private copies of nb counters (the spare counter is left out).
std::vector<std::uint64_t> merge_lanes(const std::vector<std::vector<std::uint64_t>>& hists,
                                       std::size_t per_thread, std::int32_t nb) {
  std::vector<std::uint64_t> counts(nb, 0);
  for (const auto& h : hists)
    for (std::size_t i = 0; i < per_thread; ++i) counts[i % nb] += h[i];
  return counts;
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

template <class K> RangeStats range_impl(const StridedView& v, const KernelTable& kt, int threads) {
  const std::uint64_t n = v.size();
  const int nt = threads_for(n, threads, 0);
  std::vector<RangeAcc<K>> accs(nt);
  parallel_ranges(nt, n, [&](int t, std::uint64_t a, std::uint64_t b) {
    std::vector<K> buf(kBlock);
    RangeAcc<K>& acc = accs[t];
    for_blocks<K>(v, kt, a, b, buf.data(), [&](const K* x, std::size_t m) { range_kernel<K>(kt, x, m, acc); });
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
  args.lanes = args.nb <= 8192 ? 8 : 1;
  args.skip_nonfinite = has_nonfinite;
  args.lo = static_cast<K>(plan.guess_lo);
  args.scale = static_cast<K>(plan.guess_scale);
  args.tolerance = static_cast<K>(plan.guess_tolerance);
  const std::uint64_t n = v.size();
  const std::size_t per_thread = static_cast<std::size_t>(args.lanes) * args.nb;
  const int nt = threads_for(n, threads, per_thread * sizeof(std::uint64_t));
  std::vector<std::vector<std::uint64_t>> hists(nt);
  std::vector<RangeAcc<K>> seen(nt);
  parallel_ranges(nt, n, [&](int t, std::uint64_t a, std::uint64_t b) {
    std::vector<K> buf(kBlock);
    std::vector<std::uint64_t>& h = hists[t];
    h.assign(per_thread + 1, 0);  // + the spare counter
    for_blocks<K>(v, kt, a, b, buf.data(), [&](const K* x, std::size_t m) {
      if (observed) range_kernel<K>(kt, x, m, seen[t]);  // the block is in cache already
      if constexpr (std::is_same_v<K, float>) kt.count_v2_f32(x, m, args, h.data());
      else kt.count_v2_f64(x, m, args, h.data());
    });
  });
  if (observed) {
    for (int t = 1; t < nt; ++t) seen[0].merge(seen[t]);
    *observed = to_stats(seen[0]);
  }
  return merge_lanes(hists, per_thread, args.nb);
}

template <class K> V1Raw v1_impl(const StridedView& v, const KernelTable& kt, int threads) {
  std::vector<K> thresholds = v1_thresholds<K>();
  thresholds.push_back(std::numeric_limits<K>::infinity());  // T[nb + 1]: see CountArgs
  CountArgs<K> args;
  args.thresholds = thresholds.data();
  args.nb = static_cast<std::int32_t>(thresholds.size() - 2);
  args.lanes = 4;
  const std::vector<std::int16_t>& guess = v1_guess_table<K>();
  const std::vector<std::int32_t> guess32(guess.begin(), guess.end());
  args.guess_table = guess.data();
  args.guess_table32 = guess32.data();
  const std::uint64_t n = v.size();
  const std::size_t stride = static_cast<std::size_t>(args.nb) + 1;
  const std::size_t per_thread = static_cast<std::size_t>(args.lanes) * stride;
  const int nt = threads_for(n, threads, 0);
  std::vector<std::vector<std::uint64_t>> hists(nt);
  std::vector<V1Acc<K>> accs(nt);
  parallel_ranges(nt, n, [&](int t, std::uint64_t a, std::uint64_t b) {
    std::vector<K> buf(kBlock);
    std::vector<std::uint64_t>& h = hists[t];
    h.assign(per_thread, 0);
    for_blocks<K>(v, kt, a, b, buf.data(), [&](const K* x, std::size_t m) {
      if constexpr (std::is_same_v<K, float>) kt.v1_f32(x, m, args, h.data(), accs[t]);
      else kt.v1_f64(x, m, args, h.data(), accs[t]);
    });
  });
  V1Raw raw;
  raw.counts.assign(args.nb, 0);
  for (const auto& h : hists)
    for (std::size_t i = 0; i < per_thread; ++i)
      if (i % stride != static_cast<std::size_t>(args.nb)) raw.counts[i % stride] += h[i];
  for (int t = 1; t < nt; ++t) accs[0].range.merge(accs[t].range);
  raw.stats = to_stats(accs[0].range);
  for (auto& acc : accs) {
    if constexpr (std::is_same_v<K, float>) fold_fast_bins(acc);
    acc.sums.fold_into(raw.sum, raw.sumsq);
  }
  return raw;
}

}  // namespace

void fold_fast_bins(V1Acc<float>& acc) {
  FastExactBinsF32& f = acc.fast;
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

}  // namespace histgpu::cpu
