#include "prism/grpc_tracing/carriers.h"

#include <cstring>

namespace prism::grpc_tracing {

std::optional<std::string> ServerMetadataCarrier::Get(std::string_view key) const {
  // A call carries a handful of entries: a linear scan that compares sizes
  // first beats the ordered search (memcmp per tree node) on every call.
  std::optional<std::string> out;
  for (const auto& [name, value] : md_) {
    if (name.size() != key.size() || std::memcmp(name.data(), key.data(), key.size()) != 0) {
      continue;
    }
    if (out) {
      out->push_back(',');
      out->append(value.data(), value.size());
    } else {
      out.emplace(value.data(), value.size());
    }
  }
  return out;
}

std::optional<std::string> SendMetadataCarrier::Get(std::string_view key) const {
  std::optional<std::string> out;
  auto range = md_.equal_range(std::string(key));
  for (auto it = range.first; it != range.second; ++it) {
    if (out) {
      out->push_back(',');
      out->append(it->second);
    } else {
      out = it->second;
    }
  }
  return out;
}

void SendMetadataCarrier::Set(std::string_view key, std::string_view value) {
  std::string k(key);
  md_.erase(k);
  md_.emplace(std::move(k), std::string(value));
}

std::string FormatTraceResponse(const prism::tracing::SpanContext& server_span) {
  std::string out(55, '-');
  out[0] = '0';
  out[1] = '0';
  server_span.trace_id().WriteHex(&out[3]);
  server_span.span_id().WriteHex(&out[36]);
  const uint8_t flags = server_span.flags() | prism::tracing::trace_flags::kSampled;
  prism::tracing::hex::Encode(&flags, 1, &out[53]);
  return out;
}

bool TraceResponseKept(std::string_view value, const prism::tracing::TraceId& trace_id) {
  if (value.size() != 55 || value.substr(0, 3) != "00-" || value[35] != '-' || value[52] != '-') {
    return false;
  }
  uint8_t flags = 0;
  if (!prism::tracing::hex::DecodeLower(value.substr(53, 2), &flags, 1)) return false;
  return (flags & prism::tracing::trace_flags::kSampled) &&
         prism::tracing::TraceId::FromHex(value.substr(3, 32)) == trace_id;
}

}  // namespace prism::grpc_tracing
