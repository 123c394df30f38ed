#pragma once
// The part of a span that crosses process boundaries.

#include <cstdint>

#include "prism/tracing/ids.h"
#include "prism/tracing/trace_state.h"

namespace prism::tracing {

// W3C trace-flags bits.
namespace trace_flags {
inline constexpr uint8_t kSampled = 0x01;
// W3C Trace Context Level 2: the low 56 bits of the trace id are random.
inline constexpr uint8_t kRandom = 0x02;
}  // namespace trace_flags

class SpanContext {
 public:
  SpanContext() = default;
  SpanContext(TraceId trace_id, SpanId span_id, uint8_t flags, bool remote, TraceState state = {})
      : trace_id_(trace_id),
        span_id_(span_id),
        flags_(flags),
        remote_(remote),
        trace_state_(std::move(state)) {}

  static const SpanContext& Invalid();

  bool IsValid() const { return trace_id_.IsValid() && span_id_.IsValid(); }
  const TraceId& trace_id() const { return trace_id_; }
  const SpanId& span_id() const { return span_id_; }
  uint8_t flags() const { return flags_; }
  bool IsSampled() const { return flags_ & trace_flags::kSampled; }
  bool IsRandom() const { return flags_ & trace_flags::kRandom; }
  bool IsRemote() const { return remote_; }
  const TraceState& trace_state() const { return trace_state_; }

  friend bool operator==(const SpanContext& a, const SpanContext& b) {
    return a.trace_id_ == b.trace_id_ && a.span_id_ == b.span_id_ && a.flags_ == b.flags_ &&
           a.remote_ == b.remote_ && a.trace_state_ == b.trace_state_;
  }

 private:
  TraceId trace_id_;
  SpanId span_id_;
  uint8_t flags_ = 0;
  bool remote_ = false;
  TraceState trace_state_;
};

}  // namespace prism::tracing
