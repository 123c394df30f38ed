// The design record's TestTraceContextPropagation, in C++: a parent span is
// injected into a carrier, extracted on "the other side", and a child is
// started from it.

#include <gtest/gtest.h>

#include <map>

#include "prism/tracing/carriers.h"
#include "prism/tracing/propagation.h"
#include "test_util.h"

namespace prism::tracing {
namespace {

TEST(TraceContextPropagation, ParentInjectExtractChild) {
  InMemorySpanRecorder rec;
  auto provider = testing::RecordingProvider(rec);
  Tracer tracer = provider->GetTracer("prism-test");
  auto propagator = MakeW3CTraceContextPropagator();

  Span parent = tracer.StartSpan("parent-operation", SpanKind::kClient);
  std::map<std::string, std::string> headers;
  MapCarrier carrier(headers);
  propagator->Inject(Context(parent.context()), carrier);
  ASSERT_TRUE(headers.count("traceparent"));
  EXPECT_EQ(headers["traceparent"].size(), 55u);

  Context extracted = propagator->Extract(carrier, Context());
  ASSERT_TRUE(extracted.span_context().IsValid());
  EXPECT_TRUE(extracted.span_context().IsRemote());

  StartSpanOptions o;
  o.kind = SpanKind::kServer;
  o.parent = extracted.span_context();
  Span child = tracer.StartSpan("child-operation", o);
  child.End();
  parent.End();

  auto spans = rec.spans();
  ASSERT_EQ(spans.size(), 2u);
  const SpanData& c = spans[0];
  const SpanData& p = spans[1];
  EXPECT_EQ(c.context.trace_id(), p.context.trace_id());  // same trace id
  EXPECT_EQ(c.parent_span_id, p.context.span_id());       // the child's parent is the parent
  EXPECT_TRUE(c.parent_is_remote);
  EXPECT_NE(c.context.span_id(), p.context.span_id());
  EXPECT_EQ(c.context.flags(), p.context.flags());  // sampled and random both travel
}

TEST(TraceContextPropagation, TraceStateAndBaggageTravelTogether) {
  InMemorySpanRecorder rec;
  auto provider = testing::RecordingProvider(rec);
  Tracer tracer = provider->GetTracer("prism-test");
  std::vector<std::unique_ptr<TextMapPropagator>> v;
  v.push_back(MakeW3CTraceContextPropagator());
  v.push_back(MakeW3CBaggagePropagator());
  auto propagator = MakeCompositePropagator(std::move(v));

  StartSpanOptions o;
  o.parent = SpanContext(GenerateTraceId(), GenerateSpanId(), 3, true,
                         TraceState::Parse("vendor=abc,other=1"));
  Span span = tracer.StartSpan("op", o);
  std::map<std::string, std::string> headers;
  MapCarrier carrier(headers);
  propagator->Inject(Context(span.context(), Baggage().Set("tenant", "acme corp")), carrier);
  EXPECT_EQ(headers["tracestate"], "vendor=abc,other=1");
  Context back = propagator->Extract(carrier, Context());
  EXPECT_EQ(back.span_context().span_id(), span.context().span_id());
  EXPECT_EQ(back.span_context().trace_state().Get("vendor").value_or(""), "abc");
  EXPECT_EQ(back.baggage().Get("tenant").value_or(""), "acme corp");
}

TEST(TraceContextPropagation, InvalidHeaderStartsANewTrace) {
  InMemorySpanRecorder rec;
  auto provider = testing::RecordingProvider(rec);
  auto propagator = MakeW3CTraceContextPropagator();
  std::map<std::string, std::string> headers{
      {"traceparent", "00-00000000000000000000000000000000-00f067aa0ba902b7-01"},
      {"tracestate", "vendor=abc"}};
  MapCarrier carrier(headers);
  Context ctx = propagator->Extract(carrier, Context());
  EXPECT_FALSE(ctx.span_context().IsValid());
  StartSpanOptions o;
  o.parent = ctx.span_context();
  Span span = provider->GetTracer("t").StartSpan("op", o);
  EXPECT_TRUE(span.context().IsValid());
  EXPECT_TRUE(span.context().trace_state().empty());
}

}  // namespace
}  // namespace prism::tracing
