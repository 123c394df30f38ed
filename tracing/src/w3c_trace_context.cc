// W3C Trace Context (Level 2): traceparent/tracestate parsing, formatting
// and the propagator.

#include <utility>

#include "prism/tracing/propagation.h"
#include "text.h"

namespace prism::tracing {
namespace {
using internal::IsOws;
using internal::TrimOws;

constexpr std::string_view kTraceparent = "traceparent";
constexpr std::string_view kTracestate = "tracestate";

// "00-" 32 "-" 16 "-" 2
constexpr size_t kTraceparentSize = 55;
constexpr size_t kTraceIdOffset = 3;
constexpr size_t kSpanIdOffset = 36;
constexpr size_t kFlagsOffset = 53;
// The trace-flags bits this implementation knows (sampled, random). The
// others are reserved: writers must send them as zero.
constexpr uint8_t kKnownFlags = trace_flags::kSampled | trace_flags::kRandom;

class W3CTraceContextPropagator final : public TextMapPropagator {
 public:
  void Inject(const Context& context, TextMapCarrier& carrier) const override {
    const SpanContext& sc = context.span_context();
    if (!sc.IsValid()) return;
    char buf[kTraceparentSize];
    w3c::FormatTraceparent(sc, buf);
    carrier.Set(kTraceparent, std::string_view(buf, sizeof(buf)));
    if (!sc.trace_state().empty()) carrier.Set(kTracestate, sc.trace_state().ToHeader());
  }

  Context Extract(const TextMapCarrier& carrier, const Context& base) const override {
    std::optional<std::string> traceparent = carrier.Get(kTraceparent);
    if (!traceparent) return base;
    // Header carriers may hand over surrounding OWS (RFC 9110 5.5).
    std::optional<SpanContext> sc = w3c::ParseTraceparent(TrimOws(*traceparent));
    if (!sc) return base;  // invalid: the caller starts a new trace
    // tracestate is parsed only with a valid traceparent; an invalid one is
    // dropped whole and never affects the traceparent.
    std::optional<std::string> tracestate = carrier.Get(kTracestate);
    if (tracestate) {
      std::optional<TraceState> state = TraceState::ParseStrict(*tracestate);
      if (state && !state->empty()) {
        return base.WithSpanContext(
            SpanContext(sc->trace_id(), sc->span_id(), sc->flags(), true, std::move(*state)));
      }
    }
    return base.WithSpanContext(std::move(*sc));
  }

  std::vector<std::string> Fields() const override {
    return {std::string(kTraceparent), std::string(kTracestate)};
  }
};

}  // namespace

std::unique_ptr<TextMapPropagator> MakeW3CTraceContextPropagator() {
  return std::make_unique<W3CTraceContextPropagator>();
}

namespace w3c {

std::optional<SpanContext> ParseTraceparent(std::string_view traceparent,
                                            std::string_view tracestate) {
  const std::string_view tp = traceparent;
  if (tp.size() < kTraceparentSize) return std::nullopt;
  uint8_t version = 0;
  if (!hex::DecodeLower(tp.substr(0, 2), &version, 1)) return std::nullopt;
  if (version == 0xff) return std::nullopt;
  if (tp[2] != '-' || tp[kSpanIdOffset - 1] != '-' || tp[kFlagsOffset - 1] != '-') {
    return std::nullopt;
  }
  if (version == 0) {
    // Version 00 is exactly 55 characters.
    if (tp.size() != kTraceparentSize) return std::nullopt;
  } else if (tp.size() > kTraceparentSize && tp[kTraceparentSize] != '-') {
    // A higher version may append fields, each after a '-'.
    return std::nullopt;
  }

  std::array<uint8_t, TraceId::kSize> trace_id_bytes;
  std::array<uint8_t, SpanId::kSize> span_id_bytes;
  uint8_t flags = 0;
  if (!hex::DecodeLower(tp.substr(kTraceIdOffset, 2 * TraceId::kSize), trace_id_bytes.data(),
                        TraceId::kSize) ||
      !hex::DecodeLower(tp.substr(kSpanIdOffset, 2 * SpanId::kSize), span_id_bytes.data(),
                        SpanId::kSize) ||
      !hex::DecodeLower(tp.substr(kFlagsOffset, 2), &flags, 1)) {
    return std::nullopt;
  }
  TraceId trace_id(trace_id_bytes);
  SpanId span_id(span_id_bytes);
  if (!trace_id.IsValid() || !span_id.IsValid()) return std::nullopt;
  // Of a higher version only the flags this version defines are read.
  if (version != 0) flags &= kKnownFlags;

  TraceState state;
  if (!tracestate.empty()) state = TraceState::ParseStrict(tracestate).value_or(TraceState());
  return SpanContext(trace_id, span_id, flags, /*remote=*/true, std::move(state));
}

void FormatTraceparent(const SpanContext& context, char out[55]) {
  out[0] = '0';
  out[1] = '0';
  out[2] = '-';
  context.trace_id().WriteHex(out + kTraceIdOffset);
  out[kSpanIdOffset - 1] = '-';
  context.span_id().WriteHex(out + kSpanIdOffset);
  out[kFlagsOffset - 1] = '-';
  // A version-00 writer sets the reserved flag bits to zero.
  const uint8_t flags = context.flags() & kKnownFlags;
  hex::Encode(&flags, 1, out + kFlagsOffset);
}

std::string FormatTraceparent(const SpanContext& context) {
  std::string out(kTraceparentSize, '\0');
  FormatTraceparent(context, out.data());
  return out;
}
}  // namespace w3c

}  // namespace prism::tracing
