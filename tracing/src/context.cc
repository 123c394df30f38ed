#include "prism/tracing/context.h"

#include "prism/tracing/span.h"

namespace prism::tracing {
namespace {
// Trivially destructible, so it is safe to use during thread and process
// exit (opentelemetry-cpp #3361 crashed there on a destroyed thread_local).
thread_local Scope* t_top = nullptr;
}  // namespace

const SpanContext& SpanContext::Invalid() {
  static const SpanContext* invalid = new SpanContext();
  return *invalid;
}

Scope::Scope(Context context) : context_(std::move(context)), previous_(t_top) { t_top = this; }

Scope::Scope(Span& span)
    : context_(span.context(), t_top ? t_top->context_.baggage() : Baggage()),
      span_(&span),
      previous_(t_top) {
  t_top = this;
}

Scope::~Scope() { t_top = previous_; }

Context Context::Current() { return t_top ? t_top->context_ : Context(); }

const SpanContext& CurrentSpanContext() {
  return t_top ? t_top->context_.span_context() : SpanContext::Invalid();
}

Span* CurrentSpan() { return t_top ? t_top->span_ : nullptr; }

}  // namespace prism::tracing
