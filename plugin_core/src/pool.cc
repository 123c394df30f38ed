#include "prism/plugin/pool.h"

namespace prism::plugin::internal {

prism::tracing::Span StartAcquireSpan(const prism::tracing::Tracer& tracer,
                                      const prism::tracing::SpanContext& parent,
                                      const std::string& pool_name, size_t size) {
  prism::tracing::StartSpanOptions o;
  o.kind = prism::tracing::SpanKind::kInternal;
  if (parent.IsValid()) o.parent = parent;
  if (tracer.enabled()) {
    o.attributes.reserve(3);
    o.attributes.push_back({pool_attr::kPoolName, pool_name});
    o.attributes.push_back({pool_attr::kPoolSize, static_cast<int64_t>(size)});
  }
  return tracer.StartSpan("pool.acquire", std::move(o));
}

void EndAcquireSpan(prism::tracing::Span& span, std::chrono::steady_clock::time_point start,
                    const absl::Status& status) {
  if (span.IsRecording()) {
    auto waited = std::chrono::duration_cast<std::chrono::microseconds>(
        std::chrono::steady_clock::now() - start);
    span.SetAttribute(pool_attr::kWaitUs, static_cast<int64_t>(waited.count()));
    if (!status.ok()) {
      span.SetAttribute("error.type", absl::StatusCodeToString(status.code()));
      span.SetStatus(prism::tracing::StatusCode::kError,
                     std::string_view(status.message().data(), status.message().size()));
    }
  }
  span.End();
}

}  // namespace prism::plugin::internal
