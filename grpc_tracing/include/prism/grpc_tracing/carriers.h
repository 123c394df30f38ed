#pragma once
// TextMapCarriers over gRPC metadata, so the W3C propagators can read the
// metadata a server received and write the metadata a client sends.
// gRPC metadata keys are lower-case on the wire, so lookups are exact.

#include <grpcpp/client_context.h>
#include <grpcpp/support/string_ref.h>

#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "prism/tracing/propagation.h"

namespace prism::grpc_tracing {

// Read-only view of received metadata (ServerContextBase::client_metadata()
// or InterceptorBatchMethods::GetRecvInitialMetadata()). Repeated keys are
// joined with ',' like HTTP header fields. Set does nothing.
class ServerMetadataCarrier final : public prism::tracing::TextMapCarrier {
 public:
  explicit ServerMetadataCarrier(const std::multimap<grpc::string_ref, grpc::string_ref>& md)
      : md_(md) {}
  std::optional<std::string> Get(std::string_view key) const override;
  void Set(std::string_view, std::string_view) override {}

 private:
  const std::multimap<grpc::string_ref, grpc::string_ref>& md_;
};

// Metadata about to be sent (InterceptorBatchMethods::GetSendInitialMetadata()).
class SendMetadataCarrier final : public prism::tracing::TextMapCarrier {
 public:
  explicit SendMetadataCarrier(std::multimap<std::string, std::string>& md) : md_(md) {}
  std::optional<std::string> Get(std::string_view key) const override;
  // Replaces every existing entry of `key`.
  void Set(std::string_view key, std::string_view value) override;

 private:
  std::multimap<std::string, std::string>& md_;
};

// Writes into a ClientContext before the call starts (ClientContext::AddMetadata).
class ClientContextCarrier final : public prism::tracing::TextMapCarrier {
 public:
  explicit ClientContextCarrier(grpc::ClientContext& ctx) : ctx_(ctx) {}
  std::optional<std::string> Get(std::string_view) const override { return std::nullopt; }
  void Set(std::string_view key, std::string_view value) override {
    ctx_.AddMetadata(std::string(key), std::string(value));
  }

 private:
  grpc::ClientContext& ctx_;
};

// Adaptive sampling across a call (docs/sampling.md): a server that kept
// the trace of an unsampled call says so in its trailing metadata, the gRPC
// form of W3C Trace Context Level 2's `traceresponse` response header:
// "00-<trace id>-<server span id>-<flags with sampled set>".
inline constexpr char kTraceResponseKey[] = "traceresponse";
std::string FormatTraceResponse(const prism::tracing::SpanContext& server_span);
// True when `value` is a well-formed traceresponse for `trace_id` whose
// sampled flag is set (the callee kept the trace).
bool TraceResponseKept(std::string_view value, const prism::tracing::TraceId& trace_id);

}  // namespace prism::grpc_tracing
