#pragma once
// Span limits (OTEL_SPAN_*_LIMIT and friends); what is over a limit is dropped
// and counted in the span's dropped_*_count.

#include <cstdint>
#include <limits>

#include "prism/tracing/env.h"

namespace prism::tracing {

struct SpanLimits {
  static constexpr uint32_t kDefaultCount = 128;
  uint32_t attribute_count = kDefaultCount;
  // Longer string values (and array elements) are truncated; no limit by default.
  uint32_t attribute_value_length = std::numeric_limits<uint32_t>::max();
  uint32_t event_count = kDefaultCount;
  uint32_t link_count = kDefaultCount;
  uint32_t event_attribute_count = kDefaultCount;
  uint32_t link_attribute_count = kDefaultCount;

  // OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT, OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT,
  // OTEL_SPAN_EVENT_COUNT_LIMIT, OTEL_SPAN_LINK_COUNT_LIMIT,
  // OTEL_EVENT_ATTRIBUTE_COUNT_LIMIT, OTEL_LINK_ATTRIBUTE_COUNT_LIMIT, with the
  // general OTEL_ATTRIBUTE_{COUNT,VALUE_LENGTH}_LIMIT as fallback.
  static SpanLimits FromEnvironment(const env::Defaults* defaults = nullptr);
};

}  // namespace prism::tracing
