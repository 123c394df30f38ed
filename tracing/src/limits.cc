#include "prism/tracing/limits.h"

#include <string>

#include "prism/tracing/diagnostics.h"
#include "prism/tracing/env.h"

namespace prism::tracing {
namespace {
void Apply(const char* name, uint32_t& field, const env::Defaults* defaults) {
  auto v = env::GetInt(name, defaults);
  if (!v) return;
  if (*v < 0 || *v > std::numeric_limits<uint32_t>::max()) {
    internal::Log(internal::LogLevel::kWarn, std::string(name) + " out of range; ignored");
    return;
  }
  field = static_cast<uint32_t>(*v);
}
}  // namespace

SpanLimits SpanLimits::FromEnvironment(const env::Defaults* defaults) {
  SpanLimits l;
  // General limits first, so the span-specific ones win.
  Apply("OTEL_ATTRIBUTE_COUNT_LIMIT", l.attribute_count, defaults);
  Apply("OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT", l.attribute_value_length, defaults);
  Apply("OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT", l.attribute_count, defaults);
  Apply("OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT", l.attribute_value_length, defaults);
  Apply("OTEL_SPAN_EVENT_COUNT_LIMIT", l.event_count, defaults);
  Apply("OTEL_SPAN_LINK_COUNT_LIMIT", l.link_count, defaults);
  Apply("OTEL_EVENT_ATTRIBUTE_COUNT_LIMIT", l.event_attribute_count, defaults);
  Apply("OTEL_LINK_ATTRIBUTE_COUNT_LIMIT", l.link_attribute_count, defaults);
  return l;
}

}  // namespace prism::tracing
