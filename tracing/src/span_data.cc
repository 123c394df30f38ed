#include "prism/tracing/span_data.h"

#include "shared.h"

namespace prism::tracing {

std::string_view ToString(SpanKind kind) {
  switch (kind) {
    case SpanKind::kInternal:
      return "INTERNAL";
    case SpanKind::kServer:
      return "SERVER";
    case SpanKind::kClient:
      return "CLIENT";
    case SpanKind::kProducer:
      return "PRODUCER";
    case SpanKind::kConsumer:
      return "CONSUMER";
  }
  return "INTERNAL";
}

const Resource& SpanData::resource() const {
  static const Resource* empty = new Resource();
  return origin && origin->resource ? *origin->resource : *empty;
}

const InstrumentationScope& SpanData::scope() const {
  static const InstrumentationScope* empty = new InstrumentationScope();
  return origin ? origin->scope : *empty;
}

const AttributeValue* SpanData::FindAttribute(std::string_view key) const {
  if (shared_attributes) {
    if (const AttributeValue* v = shared_attributes->Find(key)) return v;
  }
  for (const auto& kv : attributes) {
    if (kv.key == key) return &kv.value;
  }
  return nullptr;
}

Attributes SpanData::AllAttributes() const {
  Attributes all;
  all.reserve(attribute_count());
  ForEachAttribute([&](const KeyValue& kv) { all.push_back(kv); });
  return all;
}

}  // namespace prism::tracing
