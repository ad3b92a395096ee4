// Engine-independent driver: what a histogram is, given an engine that can scan memory.
// The CPU and CUDA engines implement `Engine`; thresholds, special cases (empty, one value,
// zero buckets), repeated elements and result assembly are decided here, once, for both.
#pragma once
#include <cstdint>
#include <vector>

#include "core/exact_sum.hpp"
#include "core/thresholds.hpp"
#include "core/types.hpp"

namespace histgpu {

// Everything a v2 count pass needs, computed on the host from the global range.
struct V2Plan {
  V2Spec spec;
  KernelType kernel = KernelType::F32;
  std::vector<float> thresholds_f32;   // T[0..k] when kernel == F32
  std::vector<double> thresholds_f64;  // T[0..k] when kernel == F64
  double guess_lo = 0.0;               // first guess of a bucket: (x - lo) * scale
  double guess_scale = 0.0;
  // The guess g = min(trunc(q), k - 1) of q = (x - lo) * scale, computed in the kernel's
  // precision, is certainly TensorBoard's bucket when q is at least this far from g and from
  // g + 1 (the ends of bucket 0 and k - 1 excepted): the rounding of both computations is
  // bounded well below it. NaN where no such bound holds: every comparison with it fails, so
  // every guess is checked (+inf would not do: an overflowing q = inf passes q - g >= inf).
  double guess_tolerance = 0.0;

  static V2Plan make(DType dtype, double min, double max, std::int64_t k);
};

// One pass over fixed TensorFlow limits: counts, range, non-finite counts, exact sums.
struct V1Raw {
  std::vector<std::uint64_t> counts;  // one per v1_default_limits() entry
  RangeStats stats;
  BigFixed sum, sumsq;
};

struct V2Result;

// One tensor of a batch of v2 histograms (histogram_many, the writer's add_histograms).
struct BatchItem {
  StridedView view;
  std::int64_t k = 0;
};

class Engine {
 public:
  virtual ~Engine() = default;
  // Range pass. Counts are of distinct addressed elements (view.multiplicity ignored).
  virtual RangeStats range(const StridedView& view) = 0;
  // Counts of the finite values per bucket (k of them), ignoring view.multiplicity. With
  // `observed`, the engine also fills in the range of the values it counted (in the same read
  // where it can): how a caller-supplied range is checked against the data.
  virtual std::vector<std::uint64_t> count_v2(const StridedView& view, const V2Plan& plan,
                                              bool has_nonfinite, RangeStats* observed = nullptr) = 0;
  virtual V1Raw v1(const StridedView& view) = 0;
  // The raw-pattern path of 8- and 16-bit dtypes (core/patterns.hpp): an engine may count how
  // often each bit pattern of the view occurs (one read; multiplicity ignored), fill `counts`
  // with pattern_space(view.dtype) entries and return true; histogram_v2 and histogram_v1 then
  // derive their results from those counts. The default, and engines that do not for this
  // view, return false and are asked for range/count_v2/v1 instead.
  virtual bool count_patterns(const StridedView& view, std::vector<std::uint64_t>& counts) {
    (void)view;
    (void)counts;
    return false;
  }
  // v2 histograms of many tensors. The default runs histogram_v2 on each; engines that can do
  // better (one batch of launches on a GPU) override it. Results are identical either way.
  virtual std::vector<V2Result> v2_many(const std::vector<BatchItem>& items);
};

struct V2Result {
  std::int64_t k = 0;
  std::vector<double> edges;            // k + 1 (all zero for empty data, k + 1 copies of the
                                        // value when all values are equal)
  std::vector<std::uint64_t> counts;    // k
  RangeStats stats;                     // counts include the view's multiplicity
};

struct V1Result {
  std::vector<std::uint64_t> counts;
  RangeStats stats;                     // min/max are DBL_MAX/-DBL_MAX for no finite values
  double sum = 0.0, sum_squares = 0.0;
};

// The finite range and value counts of a view, its multiplicity included.
RangeStats range_of(Engine& engine, const StridedView& view);

// Buckets of finite values per TensorBoard's summary_v2._buckets (docs/semantics.md §1.1, §1.2).
V2Result histogram_v2(Engine& engine, const StridedView& view, std::int64_t k);

// The range of a whole tensor when a view is one shard of it (histgpu.sharded).
struct GlobalRange {
  double min = 0.0, max = 0.0;
  std::uint64_t num = 0;  // finite values of the whole tensor
};
// The k + 1 bucket edges of `range` (all zero when it holds no value, all equal to the value
// when it holds one distinct value): the edges every v2 result of that range carries.
std::vector<double> v2_edges(const GlobalRange& range, std::int64_t k);

// A shard's counts against the range of the whole tensor; stats are the shard's own. With
// `known_local` (the shard's range_of(), from an earlier read) the shard is read once here,
// and the values counted are checked against it: std::invalid_argument when it does not
// describe this shard, or when the shard lies outside `global`.
V2Result histogram_v2_shard(Engine& engine, const StridedView& view, std::int64_t k,
                            const GlobalRange& global, const RangeStats* known_local);

// The same with the shard's own stats given, repetition excluded (no checks): the batch
// engines assemble every result through this. `observed`: as in Engine::count_v2.
V2Result histogram_v2_in_range(Engine& engine, const StridedView& view, std::int64_t k,
                               const RangeStats& local_stats, const GlobalRange& global,
                               RangeStats* observed = nullptr);

// Whether a v2 result of these stats needs counts at all (else edges and special cases say it
// all), and the result from counts an engine made against `global` (the GPU batches' counts,
// planned on the device): the special cases, edges and repetition of histogram_v2_in_range.
bool v2_needs_counts(std::int64_t k, const RangeStats& local_stats, const GlobalRange& global);
V2Result assemble_v2(const StridedView& view, std::int64_t k, const RangeStats& local_stats,
                     const GlobalRange& global, std::vector<std::uint64_t> counts);

// TensorFlow's v1 HistogramProto content (docs/semantics.md §1.3), before bucket collapsing.
V1Result histogram_v1(Engine& engine, const StridedView& view);

// A shard's v1 content whose parts merge exactly by element-wise integer sums (counts,
// exact-sum digits) and min/max: for histograms of tensors split across processes.
struct V1Partial {
  std::vector<std::uint64_t> counts;
  RangeStats stats;  // min/max only meaningful where stats.num > 0
  std::vector<std::int64_t> sum_digits, sumsq_digits;  // BigFixed::kDigits each
};
V1Partial histogram_v1_partial(Engine& engine, const StridedView& view);

// Repeats every count of `s` m times (a view whose elements stand for m values each).
RangeStats repeat_stats(RangeStats s, std::uint64_t m);

// Largest accepted bucket count (the Python layer reads it from the compiled module).
constexpr std::int64_t kMaxBuckets = std::int64_t(1) << 24;
// A bucket count as TensorBoard takes it: negative means 0; above kMaxBuckets throws.
std::int64_t checked_bucket_count(std::int64_t k);

// Sizes of a v1 result: buckets (TensorFlow's default limits) and exact-sum digits.
struct V1Sizes {
  std::size_t buckets, digits;
};
V1Sizes v1_sizes();

}  // namespace histgpu
