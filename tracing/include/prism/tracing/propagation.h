#pragma once
// Context propagation: carriers (where header-like fields live) and
// propagators (W3C traceparent/tracestate, W3C baggage, composite).
// An invalid incoming header never fails anything: it is ignored.

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "prism/tracing/baggage.h"
#include "prism/tracing/context.h"

namespace prism::tracing {

class TextMapCarrier {
 public:
  virtual ~TextMapCarrier() = default;
  // The value of field `key` (lower-case name). Header carriers match names
  // case-insensitively and join repeated fields with ',' (RFC 9110 5.3).
  virtual std::optional<std::string> Get(std::string_view key) const = 0;
  virtual void Set(std::string_view key, std::string_view value) = 0;
};

class TextMapPropagator {
 public:
  virtual ~TextMapPropagator() = default;
  virtual void Inject(const Context& context, TextMapCarrier& carrier) const = 0;
  // Returns `base` updated with what the carrier holds.
  virtual Context Extract(const TextMapCarrier& carrier, const Context& base) const = 0;
  virtual std::vector<std::string> Fields() const = 0;
};

std::unique_ptr<TextMapPropagator> MakeW3CTraceContextPropagator();
std::unique_ptr<TextMapPropagator> MakeW3CBaggagePropagator();
std::unique_ptr<TextMapPropagator> MakeCompositePropagator(
    std::vector<std::unique_ptr<TextMapPropagator>> propagators);
// OTEL_PROPAGATORS (default "tracecontext,baggage"; "none" for nothing);
// unknown names are logged and skipped, duplicates ignored.
std::unique_ptr<TextMapPropagator> PropagatorFromEnvironment();

// The W3C wire formats, exposed for tests, fuzzers and other carriers.
namespace w3c {
// Parses a traceparent header (W3C Trace Context Level 2 rules, including
// future versions) and the tracestate that goes with it. The result is
// marked remote. nullopt when traceparent is invalid. The tracestate is all
// or nothing: one invalid member, a repeated key or more than 32 members
// discards the whole header (TraceState::ParseStrict), as the W3C test
// suite's strict level and the Go/Java/C++ OTel SDKs do.
std::optional<SpanContext> ParseTraceparent(std::string_view traceparent,
                                            std::string_view tracestate = {});
// "00-<trace id>-<span id>-<flags>": 55 characters.
std::string FormatTraceparent(const SpanContext& context);
void FormatTraceparent(const SpanContext& context, char out[55]);

inline constexpr size_t kBaggageMaxMembers = 64;
inline constexpr size_t kBaggageMaxBytes = 8192;
// Parses a baggage header: invalid members are skipped; members past the
// spec's limits (64 members, 8192 bytes) are dropped.
Baggage ParseBaggage(std::string_view header);
// Serializes, percent-encoding values, dropping members that would exceed
// the limits.
std::string FormatBaggage(const Baggage& baggage);
}  // namespace w3c

}  // namespace prism::tracing
