// Protobuf wire bytes of TensorBoard summary values, built straight from engine results: the
// bytes protobuf itself writes (tests/tensorboard/test_batched.py compares them), without a
// Python object per field. The writer's batched add_histograms joins them into one event.
#pragma once
#include <optional>
#include <string>
#include <string_view>

#include "core/histogram.hpp"

namespace histgpu {

// `Summary` field 1 (a framed `Summary.Value`) of Value{tag, histo: HistogramProto} in
// PyTorch's layout for bins="tensorflow" (docs/semantics.md §1.3.2): numpy's counts over
// TensorFlow's default v1 limits without ±DBL_MAX, cut to the support of the counts (the
// bucket of the minimum to the bucket of the maximum, plus the empty bin before it that
// carries the leftmost edge). nullopt where that support reaches the outermost limits or there
// is no finite value: the caller's general path (histgpu._torch_layout) handles those.
std::optional<std::string> torch_layout_value(std::string_view tag, const V1Result& r);

}  // namespace histgpu
