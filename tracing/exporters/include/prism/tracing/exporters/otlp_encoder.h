#pragma once
// Hand-written OTLP encoders for ExportTraceServiceRequest (opentelemetry-proto
// collector/trace/v1), in protobuf binary and OTLP/JSON form, and decoders for
// the bits of the responses an exporter needs (partial success, google.rpc.Status).
//
// Spans are grouped by resource and instrumentation scope (by identity: the
// Resource and InstrumentationScope objects their tracer points at), keeping
// the order in which groups first appear.

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "prism/tracing/span_data.h"

namespace prism::tracing::otlp {

using SpanBatch = std::span<const std::unique_ptr<SpanData>>;

// Span.flags as OTLP defines it: W3C trace flags in bits 0-7, bit 8
// (HAS_IS_REMOTE) always set, bit 9 (IS_REMOTE) when the parent is remote.
inline constexpr uint32_t kSpanFlagsHasIsRemote = 0x100;
inline constexpr uint32_t kSpanFlagsIsRemote = 0x200;
uint32_t SpanFlags(const SpanData& span);
uint32_t LinkFlags(const Link& link);

// Appends the protobuf encoding of an ExportTraceServiceRequest to `out`.
void EncodeProtobuf(SpanBatch spans, std::string& out);
// Appends the OTLP/JSON encoding (hex ids, integer enums, lowerCamelCase keys,
// 64-bit integers as decimal strings); no trailing newline.
void EncodeJson(SpanBatch spans, std::string& out);

struct PartialSuccess {
  int64_t rejected_spans = 0;
  std::string error_message;
};
// ExportTraceServiceResponse. nullopt when the body does not parse; a
// PartialSuccess with 0 rejected and an empty message means full success.
std::optional<PartialSuccess> DecodeResponseProtobuf(std::string_view body);
std::optional<PartialSuccess> DecodeResponseJson(std::string_view body);

// google.rpc.Status (the body of an OTLP/HTTP error, the details of a gRPC
// status): the message, and the RetryInfo delay if one of the details is a
// google.rpc.RetryInfo.
struct RpcStatus {
  int32_t code = 0;
  std::string message;
  std::optional<int64_t> retry_delay_ms;
};
std::optional<RpcStatus> DecodeRpcStatus(std::string_view body);

}  // namespace prism::tracing::otlp
