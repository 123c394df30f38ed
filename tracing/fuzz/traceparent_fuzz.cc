// Fuzzes w3c::ParseTraceparent. The input is "<traceparent>\n<tracestate>".
// A context that parses must format to 55 characters that parse back to the
// same context (the reserved flag bits are not written).

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "prism/tracing/propagation.h"

using prism::tracing::SpanContext;
using prism::tracing::TraceState;
namespace w3c = prism::tracing::w3c;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);
  std::string_view traceparent = input;
  std::string_view tracestate;
  if (size_t nl = input.find('\n'); nl != std::string_view::npos) {
    traceparent = input.substr(0, nl);
    tracestate = input.substr(nl + 1);
  }

  std::optional<SpanContext> sc = w3c::ParseTraceparent(traceparent, tracestate);
  if (!sc) return 0;
  if (!sc->IsValid() || !sc->IsRemote()) abort();

  std::string formatted = w3c::FormatTraceparent(*sc);
  if (formatted.size() != 55 || formatted.compare(0, 3, "00-") != 0) abort();
  if (formatted.substr(3, 32) != sc->trace_id().ToHex()) abort();
  if (formatted.substr(36, 16) != sc->span_id().ToHex()) abort();
  if (traceparent.substr(0, 3) == "00-" && formatted.compare(0, 52, traceparent.substr(0, 52)) != 0)
    abort();

  std::optional<SpanContext> back = w3c::ParseTraceparent(formatted, sc->trace_state().ToHeader());
  if (!back) abort();
  if (back->trace_id() != sc->trace_id() || back->span_id() != sc->span_id()) abort();
  if (back->flags() != (sc->flags() & 0x03)) abort();
  if (!(back->trace_state() == sc->trace_state())) abort();

  // The tracestate the propagator keeps is exactly what ParseStrict gives.
  std::optional<TraceState> strict = TraceState::ParseStrict(tracestate);
  if (!(sc->trace_state() == strict.value_or(TraceState()))) abort();
  return 0;
}
