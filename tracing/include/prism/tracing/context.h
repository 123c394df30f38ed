#pragma once
// Context: the active span context and baggage. Each thread has a current
// Context set by RAII Scopes; asynchronous code passes Context (or a
// SpanContext) explicitly, since gRPC callbacks hop threads.

#include "prism/tracing/baggage.h"
#include "prism/tracing/span_context.h"

namespace prism::tracing {

class Span;

class Context {
 public:
  Context() = default;
  explicit Context(SpanContext span_context, Baggage baggage = {})
      : span_context_(std::move(span_context)), baggage_(std::move(baggage)) {}

  // A copy of this thread's current context (empty when no Scope is active).
  static Context Current();

  const SpanContext& span_context() const { return span_context_; }
  const Baggage& baggage() const { return baggage_; }
  Context WithSpanContext(SpanContext sc) const { return Context(std::move(sc), baggage_); }
  Context WithBaggage(Baggage b) const { return Context(span_context_, std::move(b)); }

 private:
  SpanContext span_context_;
  Baggage baggage_;
};

// Makes a context current on this thread until destruction, then restores
// the previous one. Scopes nest strictly (LIFO) and must not change threads.
class Scope {
 public:
  explicit Scope(Context context);
  // Makes `span` current, keeping the current baggage. The span must stay
  // alive and in place while the Scope exists.
  explicit Scope(Span& span);
  ~Scope();
  Scope(const Scope&) = delete;
  Scope& operator=(const Scope&) = delete;

 private:
  friend const SpanContext& CurrentSpanContext();
  friend Span* CurrentSpan();
  friend Context Context::Current();
  Context context_;
  Span* span_ = nullptr;
  Scope* previous_;
};

// The current span context of this thread (invalid when none). No copy.
const SpanContext& CurrentSpanContext();
// The span made current by Scope(Span&), or nullptr.
Span* CurrentSpan();

}  // namespace prism::tracing
