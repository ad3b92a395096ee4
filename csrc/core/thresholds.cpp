#include "core/thresholds.hpp"

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <limits>

#include "core/ordered.hpp"

namespace histgpu {

V2Spec V2Spec::make(double min, double max, std::int64_t k) {
  V2Spec s;
  s.k = k;
  s.min = min;
  s.max = max;
  const double range = max - min;
  if (std::isinf(range)) {
    // TensorBoard divides inf by inf here and loses every count; halving each term keeps
    // the arithmetic finite and the map monotone.
    s.halved = true;
    s.width = (max * 0.5 - min * 0.5) / static_cast<double>(k);
  } else {
    s.width = range / static_cast<double>(k);
  }
  return s;
}

std::int64_t V2Spec::bucket(double x) const {
  const double offset = halved ? (x * 0.5 - min * 0.5) : (x - min);
  const double q = std::floor(offset / width);
  if (!(q >= 0.0)) return 0;  // only for x < min, which never reaches here
  if (q >= static_cast<double>(k - 1)) return k - 1;
  return static_cast<std::int64_t>(q);
}

std::vector<double> V2Spec::edges() const {
  std::vector<double> e(static_cast<std::size_t>(k) + 1);
  e[0] = min;
  for (std::int64_t i = 1; i < k; ++i) e[i] = edges_guess(i);
  e[k] = max;
  return e;
}

const std::vector<double>& v1_default_limits() {
  static const std::vector<double> limits = [] {
    std::vector<double> pos, neg;
    // Limits grow by 10% from 1e-12 up to 1e20, as TensorFlow's histogram.cc builds them.
    for (double v = 1.0e-12; v < 1.0e20; v *= 1.1) {
      pos.push_back(v);
      neg.push_back(-v);
    }
    pos.push_back(DBL_MAX);
    neg.push_back(-DBL_MAX);
    std::vector<double> all(neg.rbegin(), neg.rend());
    all.push_back(0.0);
    all.insert(all.end(), pos.begin(), pos.end());
    return all;
  }();
  return limits;
}

std::int64_t v1_bucket(double x) {
  const auto& lim = v1_default_limits();
  auto b = static_cast<std::int64_t>(std::upper_bound(lim.begin(), lim.end(), x) - lim.begin());
  const auto last = static_cast<std::int64_t>(lim.size()) - 1;
  return b > last ? last : b;
}

namespace {

// Smallest key in [klo, khi] with f(key) >= j, given f(khi) >= j > f(klo), starting near `c`.
template <class Key, class F>
Key smallest_key_reaching(std::int64_t j, Key klo, Key khi, Key c, const F& f) {
  Key lo, hi;  // invariant: f(lo) < j <= f(hi)
  if (f(c) >= j) {
    hi = c;
    Key step = 1;
    for (;;) {
      lo = (hi - klo > step) ? hi - step : klo;
      if (f(lo) < j) break;
      hi = lo;
      step *= 2;
    }
  } else {
    lo = c;
    Key step = 1;
    for (;;) {
      hi = (khi - lo > step) ? lo + step : khi;
      if (f(hi) >= j) break;
      lo = hi;
      step *= 2;
    }
  }
  while (hi - lo > 1) {
    const Key mid = lo + (hi - lo) / 2;
    if (f(mid) >= j) hi = mid; else lo = mid;
  }
  return hi;
}

template <class K> K round_up_to(double v) {
  if constexpr (std::is_same_v<K, double>) {
    return v;
  } else {
    float f = static_cast<float>(v);
    if (static_cast<double>(f) < v) f = std::nextafter(f, std::numeric_limits<float>::infinity());
    return f;
  }
}

}  // namespace

template <class K> std::vector<K> v2_thresholds(const V2Spec& spec, K data_min, K data_max) {
  using Key = typename FloatBits<K>::UInt;
  const std::int64_t k = spec.k;
  std::vector<K> t(static_cast<std::size_t>(k) + 1);
  t[0] = -std::numeric_limits<K>::infinity();
  t[k] = std::numeric_limits<K>::infinity();
  const Key klo = ordered_key(data_min), khi = ordered_key(data_max);
  auto f = [&](Key key) { return spec.bucket(static_cast<double>(from_ordered_key<K>(key))); };
  const std::int64_t top = f(khi);
  for (std::int64_t j = 1; j < k; ++j) {
    if (j > top) {
      t[j] = std::numeric_limits<K>::infinity();
      continue;
    }
    // Start from the edge the formula implies; the search only walks a few keys from it.
    const double edge = spec.edges_guess(j);
    Key c = ordered_key(static_cast<K>(edge));
    c = std::min(std::max(c, klo), khi);
    t[j] = from_ordered_key<K>(smallest_key_reaching<Key>(j, klo, khi, c, f));
  }
  return t;
}

template <class K> std::vector<K> v1_thresholds() {
  const auto& lim = v1_default_limits();
  const std::size_t nb = lim.size();
  std::vector<K> t(nb + 1);
  t[0] = -std::numeric_limits<K>::infinity();
  for (std::size_t j = 1; j < nb; ++j) t[j] = round_up_to<K>(lim[j - 1]);
  t[nb] = std::numeric_limits<K>::infinity();
  return t;
}

template <class K> const std::vector<std::int16_t>& v1_guess_table() {
  static const std::vector<std::int16_t> table = [] {
    using Key = typename FloatBits<K>::UInt;
    constexpr int shift = static_cast<int>(sizeof(Key) * 8) - v1_guess_bits<K>();
    const auto last = static_cast<std::int16_t>(v1_default_limits().size() - 1);
    std::vector<std::int16_t> g((std::size_t{1} << v1_guess_bits<K>()) + 1);
    g.back() = static_cast<std::int16_t>(last + 1);  // "no bucket"
    for (std::size_t p = 0; p + 1 < g.size(); ++p) {
      const K v = from_ordered_key<K>(static_cast<Key>(p) << shift);
      if (std::isfinite(v)) g[p] = static_cast<std::int16_t>(v1_bucket(static_cast<double>(v)));
      else g[p] = (std::signbit(v) ? 0 : last);  // prefixes of non-finite keys: never used
    }
    return g;
  }();
  return table;
}

template std::vector<float> v2_thresholds<float>(const V2Spec&, float, float);
template std::vector<double> v2_thresholds<double>(const V2Spec&, double, double);
template std::vector<float> v1_thresholds<float>();
template std::vector<double> v1_thresholds<double>();
template const std::vector<std::int16_t>& v1_guess_table<float>();
template const std::vector<std::int16_t>& v1_guess_table<double>();

}  // namespace histgpu
