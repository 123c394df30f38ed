#pragma once
// SpanData: everything recorded about one span, handed to processors and
// exporters when the span ends.

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "prism/tracing/attributes.h"
#include "prism/tracing/resource.h"
#include "prism/tracing/span_context.h"

namespace prism::tracing {

// Values match the OTLP enum numbers.
enum class SpanKind : uint8_t {
  kInternal = 1,
  kServer = 2,
  kClient = 3,
  kProducer = 4,
  kConsumer = 5,
};

enum class StatusCode : uint8_t { kUnset = 0, kOk = 1, kError = 2 };

std::string_view ToString(SpanKind kind);

struct Event {
  std::string name;
  uint64_t time_unix_nano = 0;
  Attributes attributes;
  uint32_t dropped_attributes_count = 0;
};

struct Link {
  SpanContext context;
  Attributes attributes;
  uint32_t dropped_attributes_count = 0;
};

namespace internal {
struct SpanOrigin;
struct TracerShared;
}  // namespace internal

struct SpanData {
  SpanContext context;
  SpanId parent_span_id;  // invalid for a root span
  bool parent_is_remote = false;
  std::string name;
  SpanKind kind = SpanKind::kInternal;
  uint64_t start_unix_nano = 0;
  uint64_t end_unix_nano = 0;
  // The span's attributes are those of `shared_attributes`, when set (a
  // block many spans share: StartSpanOptions::shared_attributes), followed
  // by `attributes`, in that order; the two never hold the same key.
  // Exporters encode both; FindAttribute, ForEachAttribute and
  // attribute_count() see both.
  SharedAttributes shared_attributes;
  Attributes attributes;
  uint32_t dropped_attributes_count = 0;
  std::vector<Event> events;
  uint32_t dropped_events_count = 0;
  std::vector<Link> links;
  uint32_t dropped_links_count = 0;
  StatusCode status = StatusCode::kUnset;
  std::string status_message;

  // Where the span came from: its tracer's scope and the provider's
  // resource. Deliberately not the pipeline, so a processor that keeps
  // spans cannot form a reference cycle with its own provider.
  std::shared_ptr<const internal::SpanOrigin> origin;
  const Resource& resource() const;
  const InstrumentationScope& scope() const;

  const AttributeValue* FindAttribute(std::string_view key) const;
  size_t attribute_count() const {
    return attributes.size() + (shared_attributes ? shared_attributes->size() : 0);
  }
  template <typename F>
  void ForEachAttribute(F&& f) const {
    if (shared_attributes) {
      for (const auto& kv : shared_attributes->attributes()) f(kv);
    }
    for (const auto& kv : attributes) f(kv);
  }
  // Every attribute in one list (the block's copied): for tests and tools.
  Attributes AllAttributes() const;
};

// Hands a finished record nothing else refers to back for the SDK's next
// span, instead of freeing it: for processors and exporters done with a
// span (the batch processor after an export, adaptive sampling for spans it
// drops). Records freed on one thread and started on another - a plugin's
// sweeper frees what its gRPC threads started, the batch exporter what
// request threads started - meet in a shared pool. Bounded: 32 records per
// thread and 1,024 shared; past that, and for a record with unusually large
// vectors, it is freed. Letting the unique_ptr free the record is always
// correct too.
void RecycleSpanData(std::unique_ptr<SpanData> span);

}  // namespace prism::tracing
