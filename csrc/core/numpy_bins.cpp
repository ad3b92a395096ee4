#include "core/numpy_bins.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>

#include "core/ordered.hpp"

namespace histgpu {

namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// `v` rounded to a binary format with `mant` stored mantissa bits, smallest normal exponent
// `emin` and largest finite value `maxv`: the ulp is fixed at and below the normal range
// (subnormals), ties go to even (the default rounding mode), beyond maxv comes inf or NaN.
double round_small(double v, int mant, int emin, double maxv, bool has_inf) {
  if (std::isnan(v)) return v;
  if (std::isinf(v)) return has_inf ? v : kNaN;
  const double a = std::fabs(v);
  if (a == 0.0) return v;
  int e = 0;
  std::frexp(a, &e);  // a = m * 2^e with m in [0.5, 1): the leading bit is 2^(e - 1)
  const int quantum = std::max(e - 1, emin) - mant;
  double r = std::ldexp(std::nearbyint(std::ldexp(a, -quantum)), quantum);  // both scalings exact
  if (r > maxv) r = has_inf ? kInf : kNaN;
  return std::copysign(r, v);
}

std::uint64_t times(std::uint64_t a, std::uint64_t m) {
  std::uint64_t r;
  if (__builtin_mul_overflow(a, m, &r)) throw std::overflow_error("histgpu: element count overflows 64 bits");
  return r;
}

std::uint64_t plus(std::uint64_t a, std::uint64_t b) {
  std::uint64_t r;
  if (__builtin_add_overflow(a, b, &r)) throw std::overflow_error("histgpu: element count overflows 64 bits");
  return r;
}

// The smallest key in (klo, khi] where `pred` holds, given !pred(klo) and pred(khi) and a
// monotone pred; the search gallops out from `guess` (clamped), then bisects.
template <class Key, class P> Key first_true(const P& pred, Key klo, Key khi, Key guess) {
  guess = std::min(std::max(guess, klo), khi);
  Key lo, hi;  // invariant: !pred(lo), pred(hi)
  Key step = 1;
  if (pred(guess)) {
    hi = guess;
    for (;;) {
      const Key c = (hi - klo > step) ? hi - step : klo;
      if (!pred(c)) {
        lo = c;
        break;
      }
      hi = c;
      step *= 2;
    }
  } else {
    lo = guess;
    for (;;) {
      const Key c = (khi - lo > step) ? lo + step : khi;
      if (pred(c)) {
        hi = c;
        break;
      }
      lo = c;
      step *= 2;
    }
  }
  while (hi - lo > 1) {
    const Key mid = lo + (hi - lo) / 2;
    if (pred(mid)) hi = mid;
    else lo = mid;
  }
  return hi;
}

constexpr std::int64_t kNumpyFails = -2;  // a label: numpy's own index leaves [0, n) here

template <class K> NumpyPlan make_plan(const NumpyBins& b, DType dtype, double data_min, double data_max) {
  using Key = typename FloatBits<K>::UInt;
  const Key klo = ordered_key(static_cast<K>(data_min)), khi = ordered_key(static_cast<K>(data_max));
  auto value = [](Key key) { return static_cast<double>(from_ordered_key<K>(key)); };
  const std::int64_t n = b.bins();
  const double* e = b.edges.data();

  // Every step of every ingredient of the rule, inside the data's range.
  std::vector<Key> cuts;
  auto cut = [&](auto&& pred, double near) {
    auto on_key = [&](Key key) { return pred(value(key)); };
    if (klo == khi || on_key(klo) || !on_key(khi)) return;  // no step inside the range
    cuts.push_back(first_true<Key>(on_key, klo, khi, ordered_key(static_cast<K>(near))));
  };
  auto at_edge = [&](std::int64_t j) {
    cut([&](double x) { return np_round(x, b.edge_prec) >= e[j]; }, e[j]);
  };
  if (b.uniform) {
    cut([&](double x) { return np_round(x, b.keep_prec) >= b.keep_lo; }, b.keep_lo);
    cut([&](double x) { return np_round(x, b.keep_prec) > b.keep_hi; }, b.keep_hi);
    for (std::int64_t j = 0; j <= n; ++j) at_edge(j);
    for (std::int64_t m = 1; m <= n; ++m) {
      const double md = static_cast<double>(m);
      cut([&](double x) { return b.guess(x) >= md; }, e[m]);
    }
  } else {
    cut([&](double x) { return np_round(x, b.edge_prec) > e[n]; }, e[n]);
    for (std::int64_t j = 0; j < n; ++j) at_edge(j);
  }
  std::sort(cuts.begin(), cuts.end());
  cuts.erase(std::unique(cuts.begin(), cuts.end()), cuts.end());

  // The rule is constant from each start to the next: label each interval by its first value,
  // and join neighbours with the same label.
  NumpyPlan p;
  std::vector<K> t{-std::numeric_limits<K>::infinity()};
  p.label.push_back(b.bin(value(klo)));
  for (Key c : cuts) {
    const std::int64_t g = b.bin(value(c));
    if (g == p.label.back()) continue;
    t.push_back(from_ordered_key<K>(c));
    p.label.push_back(g);
  }
  t.push_back(std::numeric_limits<K>::infinity());
  const auto nb = static_cast<std::int64_t>(p.label.size());

  p.plan.spec.k = nb;
  p.plan.kernel = kernel_type(dtype);
  // First guess for the kernels: linear between the first and the last inner threshold (exact
  // for equal-width bins up to a step); every guess is checked against the table (NaN tolerance).
  p.plan.guess_tolerance = kNaN;
  p.plan.guess_lo = 0.0;
  p.plan.guess_scale = 0.0;
  if (nb >= 3) {
    const double t1 = static_cast<double>(t[1]), tl = static_cast<double>(t[nb - 1]);
    const double w = (tl - t1) / static_cast<double>(nb - 2);
    if (std::isfinite(w) && w > 0.0 && std::isfinite(1.0 / w)) {
      p.plan.guess_lo = t1 - w;
      p.plan.guess_scale = 1.0 / w;
    }
  }
  if constexpr (std::is_same_v<K, float>) p.plan.thresholds_f32 = std::move(t);
  else p.plan.thresholds_f64 = std::move(t);
  return p;
}

}  // namespace

double np_round(double v, NpFloat p) {
  switch (p) {
    case NpFloat::F64: return v;
    case NpFloat::F32: return static_cast<double>(static_cast<float>(v));
    case NpFloat::F16: return round_small(v, 10, -14, 65504.0, true);
    case NpFloat::BF16: return round_small(v, 7, -126, 0x1.fep127, true);
    case NpFloat::E4M3FN: return round_small(v, 3, -6, 448.0, false);
    case NpFloat::E5M2: return round_small(v, 2, -14, 57344.0, true);
  }
  throw std::invalid_argument("histgpu: unknown float format code");
}

void NumpyBins::check() const {
  if (edges.size() < 2) throw std::invalid_argument("histgpu: numpy bins need at least two edges");
  if (bins() > kMaxBuckets) throw std::invalid_argument("histgpu: more numpy bins than 2^24");
  for (std::size_t i = 0; i < edges.size(); ++i) {
    if (std::isnan(edges[i])) throw std::invalid_argument("histgpu: a bin edge is NaN");
    if (i && edges[i] < edges[i - 1]) throw std::invalid_argument("histgpu: bin edges must not decrease");
  }
  if (uniform && !(denom > 0.0 && n_mul > 0.0))
    throw std::invalid_argument("histgpu: equal-width numpy bins need a positive range and bin count");
}

double NumpyBins::guess(double x) const {
  const double xe = np_round(x, edge_prec);
  const double d = np_round(np_round(xe, sub_prec) - sub_first, sub_prec);
  const double q = np_round(np_round(d, div_prec) / denom, div_prec);
  return np_round(np_round(q, mul_prec) * n_mul, mul_prec);
}

std::int64_t NumpyBins::bin(double x) const {
  const std::int64_t n = bins();
  const double* e = edges.data();
  const double xe = np_round(x, edge_prec);
  if (!uniform) {  // searchsorted: edges[0] <= x <= edges[n], the last bin closed
    if (!(xe >= e[0] && xe <= e[n])) return -1;
    return static_cast<std::int64_t>(std::upper_bound(e + 1, e + n, xe) - (e + 1));
  }
  const double xk = np_round(x, keep_prec);
  if (!(xk >= keep_lo && xk <= keep_hi)) return -1;
  const double f = guess(x);
  if (!(f >= 0.0 && f < static_cast<double>(n) + 1.0)) return kNumpyFails;
  auto g = static_cast<std::int64_t>(f);
  if (g == n) g = n - 1;
  if (xe < e[g]) --g;
  if (xe >= e[g + 1] && g != n - 1) ++g;
  return (g >= 0 && g < n) ? g : kNumpyFails;
}

NumpyPlan NumpyPlan::make(const NumpyBins& bins, DType dtype, double data_min, double data_max) {
  bins.check();
  if (!std::isfinite(data_min) || !std::isfinite(data_max) || data_min > data_max)
    throw std::invalid_argument("histgpu: a numpy plan needs the finite range of the data");
  return kernel_type(dtype) == KernelType::F32 ? make_plan<float>(bins, dtype, data_min, data_max)
                                                : make_plan<double>(bins, dtype, data_min, data_max);
}

std::vector<std::uint64_t> numpy_counts(Engine& engine, const StridedView& view, const NumpyBins& bins,
                                        const RangeStats& stats) {
  bins.check();
  const std::int64_t n = bins.bins();
  std::vector<std::uint64_t> out(static_cast<std::size_t>(n), 0);
  auto add = [&](std::int64_t g, std::uint64_t c) {
    if (c == 0 || g == -1) return;
    if (g < 0)
      throw std::domain_error(
          "histgpu: numpy's bin index leaves the bins for some of these values (numpy.histogram fails on them too)");
    out[static_cast<std::size_t>(g)] = plus(out[static_cast<std::size_t>(g)], c);
  };
  if (stats.num != 0 && view.size() != 0) {
    const NumpyPlan p = NumpyPlan::make(bins, view.dtype, stats.min, stats.max);
    const bool counted = std::any_of(p.label.begin(), p.label.end(), [](std::int64_t g) { return g != -1; });
    if (counted) {
      const std::vector<std::uint64_t> c = engine.count_v2(view, p.plan, stats.nonfinite() != 0, nullptr);
      if (c.size() != p.label.size()) throw std::logic_error("histgpu: an engine returned the wrong number of counts");
      for (std::size_t i = 0; i < c.size(); ++i) add(p.label[i], times(c[i], view.multiplicity));
    }
  }
  add(bins.bin(kInf), stats.posinf);  // explicit edges may reach the infinities
  add(bins.bin(-kInf), stats.neginf);
  return out;
}

}  // namespace histgpu
