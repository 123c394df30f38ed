#include <gtest/gtest.h>

#include <functional>
#include <stdexcept>
#include <thread>

#include "prism/tracing/context.h"
#include "prism/tracing/diagnostics.h"
#include "shared.h"  // internal::KeyBit, to build a filter collision
#include "test_util.h"

namespace prism::tracing {
namespace {

using testing::RecordingProvider;
using testing::ScopedEnv;

TEST(Span, RecordsEveryAttributeType) {
  InMemorySpanRecorder rec;
  auto provider = RecordingProvider(rec);
  Tracer tracer = provider->GetTracer("test", "1.2.3");
  {
    Span span = tracer.StartSpan("op", SpanKind::kServer);
    span.SetAttribute("s", "text");
    span.SetAttribute("b", true);
    span.SetAttribute("i", 42);
    span.SetAttribute("d", 2.5);
    span.SetAttribute("sa", std::vector<std::string>{"a", "b"});
    span.SetAttribute("ba", std::vector<bool>{true, false});
    span.SetAttribute("ia", std::vector<int64_t>{1, 2});
    span.SetAttribute("da", std::vector<double>{1.5});
    span.SetAttribute("i", 43);  // overwrite keeps one entry
  }
  auto spans = rec.spans();
  ASSERT_EQ(spans.size(), 1u);
  const SpanData& s = spans[0];
  EXPECT_EQ(s.name, "op");
  EXPECT_EQ(s.kind, SpanKind::kServer);
  EXPECT_EQ(s.attributes.size(), 8u);
  EXPECT_EQ(std::get<std::string>(*s.FindAttribute("s")), "text");
  EXPECT_EQ(std::get<bool>(*s.FindAttribute("b")), true);
  EXPECT_EQ(std::get<int64_t>(*s.FindAttribute("i")), 43);
  EXPECT_EQ(std::get<double>(*s.FindAttribute("d")), 2.5);
  EXPECT_EQ(std::get<std::vector<std::string>>(*s.FindAttribute("sa")).size(), 2u);
  EXPECT_EQ(std::get<std::vector<bool>>(*s.FindAttribute("ba")).size(), 2u);
  EXPECT_EQ(std::get<std::vector<int64_t>>(*s.FindAttribute("ia"))[1], 2);
  EXPECT_EQ(std::get<std::vector<double>>(*s.FindAttribute("da"))[0], 1.5);
  EXPECT_EQ(s.scope().name, "test");
  EXPECT_EQ(s.scope().version, "1.2.3");
  EXPECT_EQ(std::get<std::string>(*s.resource().Get("service.name")), "test-service");
}

TEST(Span, TimesAreWallClockAndOrdered) {
  InMemorySpanRecorder rec;
  auto provider = RecordingProvider(rec);
  Tracer tracer = provider->GetTracer("test");
  uint64_t before = static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                              std::chrono::system_clock::now().time_since_epoch())
                                              .count());
  {
    Span span = tracer.StartSpan("op");
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  auto s = rec.spans().at(0);
  EXPECT_GE(s.start_unix_nano + 1000000, before);  // allow clock granularity
  EXPECT_GE(s.end_unix_nano - s.start_unix_nano, 5000000u);
  EXPECT_LT(s.end_unix_nano - s.start_unix_nano, 5000000000u);
}

TEST(Span, EventsLinksStatusExceptionAndRename) {
  InMemorySpanRecorder rec;
  auto provider = RecordingProvider(rec);
  Tracer tracer = provider->GetTracer("test");
  SpanContext linked(GenerateTraceId(), GenerateSpanId(), trace_flags::kSampled, true);
  {
    StartSpanOptions o;
    o.links.push_back(Link{linked, {{"why", std::string("batch")}}, 0});
    Span span = tracer.StartSpan("first", o);
    span.AddEvent("cache.miss", {{"key.count", int64_t{3}}});
    span.UpdateName("second");
    span.RecordException(std::runtime_error("boom"));
    span.SetStatus(StatusCode::kError, "it failed");
    span.SetStatus(StatusCode::kUnset);  // ignored
  }
  auto s = rec.spans().at(0);
  EXPECT_EQ(s.name, "second");
  ASSERT_EQ(s.links.size(), 1u);
  EXPECT_EQ(s.links[0].context.span_id(), linked.span_id());
  ASSERT_EQ(s.events.size(), 2u);
  EXPECT_EQ(s.events[0].name, "cache.miss");
  EXPECT_EQ(s.events[1].name, "exception");
  bool saw_type = false;
  for (auto& kv : s.events[1].attributes) {
    if (kv.key == "exception.type") {
      saw_type = true;
      EXPECT_EQ(std::get<std::string>(kv.value), "std::runtime_error");
    }
    if (kv.key == "exception.message") {
      EXPECT_EQ(std::get<std::string>(kv.value), "boom");
    }
  }
  EXPECT_TRUE(saw_type);
  EXPECT_EQ(s.status, StatusCode::kError);
  EXPECT_EQ(s.status_message, "it failed");
}

TEST(Span, OkStatusIsFinalAndHasNoDescription) {
  InMemorySpanRecorder rec;
  auto provider = RecordingProvider(rec);
  {
    Span span = provider->GetTracer("t").StartSpan("op");
    span.SetStatus(StatusCode::kOk, "ignored description");
    span.SetStatus(StatusCode::kError, "too late");
  }
  auto s = rec.spans().at(0);
  EXPECT_EQ(s.status, StatusCode::kOk);
  EXPECT_EQ(s.status_message, "");
}

TEST(Span, EndTwiceExportsOnceAndContextSurvives) {
  InMemorySpanRecorder rec;
  auto provider = RecordingProvider(rec);
  Span span = provider->GetTracer("t").StartSpan("op");
  SpanContext ctx = span.context();
  span.End();
  span.End();
  span.SetAttribute("after", 1);  // no effect, no crash
  EXPECT_EQ(rec.size(), 1u);
  EXPECT_EQ(span.context(), ctx);
  EXPECT_FALSE(span.IsRecording());
}

TEST(Span, LimitsDropAndCount) {
  InMemorySpanRecorder rec;
  SpanLimits limits;
  limits.attribute_count = 2;
  limits.event_count = 1;
  limits.link_count = 1;
  limits.event_attribute_count = 1;
  limits.attribute_value_length = 3;
  auto provider = RecordingProvider(rec, nullptr, limits);
  {
    Span span = provider->GetTracer("t").StartSpan("op");
    span.SetAttribute("a", "abcdef");
    span.SetAttribute("b", std::vector<std::string>{"xyzw", "q"});
    span.SetAttribute("c", 1);
    span.SetAttribute("d", 2);
    span.SetAttribute("a", "z");  // replacing an existing key is always allowed
    span.AddEvent("e1", {{"x", int64_t{1}}, {"y", int64_t{2}}});
    span.AddEvent("e2");
    span.AddLink(SpanContext(GenerateTraceId(), GenerateSpanId(), 1, true));
    span.AddLink(SpanContext(GenerateTraceId(), GenerateSpanId(), 1, true));
  }
  auto s = rec.spans().at(0);
  EXPECT_EQ(s.attributes.size(), 2u);
  EXPECT_EQ(s.dropped_attributes_count, 2u);
  EXPECT_EQ(std::get<std::string>(*s.FindAttribute("a")), "z");
  EXPECT_EQ(std::get<std::vector<std::string>>(*s.FindAttribute("b"))[0], "xyz");
  EXPECT_EQ(s.events.size(), 1u);
  EXPECT_EQ(s.dropped_events_count, 1u);
  EXPECT_EQ(s.events[0].attributes.size(), 1u);
  EXPECT_EQ(s.events[0].dropped_attributes_count, 1u);
  EXPECT_EQ(s.links.size(), 1u);
  EXPECT_EQ(s.dropped_links_count, 1u);
}

TEST(Span, SetAttributesFollowsTheOneByOneRules) {
  InMemorySpanRecorder rec;
  auto provider = RecordingProvider(rec);
  {
    Span span = provider->GetTracer("t").StartSpan("op");
    // Fast path (span has none yet): empty keys go, a repeated key keeps its
    // first position and its last value.
    span.SetAttributes({{"a", int64_t{1}}, {"", int64_t{9}}, {"b", int64_t{2}}, {"a", int64_t{3}}});
    // Slow path (span already has some): merged like SetAttribute.
    span.SetAttributes({{"b", int64_t{4}}, {"c", int64_t{5}}});
  }
  auto s = rec.spans().at(0);
  ASSERT_EQ(s.attributes.size(), 3u);
  EXPECT_EQ(s.attributes[0].key, "a");
  EXPECT_EQ(std::get<int64_t>(s.attributes[0].value), 3);
  EXPECT_EQ(s.attributes[1].key, "b");
  EXPECT_EQ(std::get<int64_t>(s.attributes[1].value), 4);
  EXPECT_EQ(s.attributes[2].key, "c");
}

// With a value-length limit, lists whose values all fit take the fast path
// and the others are truncated: the result is the same either way.
TEST(Span, ValueLengthLimitAtTheBoundaryOnEveryPath) {
  InMemorySpanRecorder rec;
  SpanLimits limits;
  limits.attribute_value_length = 4;
  auto provider = RecordingProvider(rec, nullptr, limits);
  {
    StartSpanOptions fits;
    fits.attributes = {{"a", std::string("abcd")}, {"l", std::vector<std::string>{"wxyz"}}};
    Span s1 = provider->GetTracer("t").StartSpan("fits", std::move(fits));
    s1.SetAttribute("x", 1);
    StartSpanOptions over;
    over.attributes = {{"a", std::string("abcde")}, {"l", std::vector<std::string>{"vwxyz"}}};
    Span s2 = provider->GetTracer("t").StartSpan("over", std::move(over));
    Span s3 = provider->GetTracer("t").StartSpan("set");
    s3.SetAttributes({{"a", std::string("abcd")}, {"b", std::string("abcde")}});
  }
  auto fits = rec.SpansNamed("fits").at(0);
  EXPECT_EQ(std::get<std::string>(*fits.FindAttribute("a")), "abcd");
  EXPECT_EQ(std::get<std::vector<std::string>>(*fits.FindAttribute("l"))[0], "wxyz");
  EXPECT_EQ(std::get<int64_t>(*fits.FindAttribute("x")), 1);
  auto over = rec.SpansNamed("over").at(0);
  EXPECT_EQ(std::get<std::string>(*over.FindAttribute("a")), "abcd");
  EXPECT_EQ(std::get<std::vector<std::string>>(*over.FindAttribute("l"))[0], "vwxy");
  auto set = rec.SpansNamed("set").at(0);
  EXPECT_EQ(std::get<std::string>(*set.FindAttribute("a")), "abcd");
  EXPECT_EQ(std::get<std::string>(*set.FindAttribute("b")), "abcd");
}

TEST(Span, SetAttributesHonoursLimits) {
  InMemorySpanRecorder rec;
  SpanLimits limits;
  limits.attribute_count = 2;
  limits.attribute_value_length = 2;
  auto provider = RecordingProvider(rec, nullptr, limits);
  {
    Span span = provider->GetTracer("t").StartSpan("op");
    span.SetAttributes({{"a", std::string("abc")}, {"b", int64_t{1}}, {"c", int64_t{2}}});
  }
  auto s = rec.spans().at(0);
  EXPECT_EQ(s.attributes.size(), 2u);
  EXPECT_EQ(s.dropped_attributes_count, 1u);
  EXPECT_EQ(std::get<std::string>(*s.FindAttribute("a")), "ab");
}

TEST(Span, LimitsFromEnvironment) {
  ScopedEnv a("OTEL_ATTRIBUTE_COUNT_LIMIT", "7");
  ScopedEnv b("OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT", "5");  // span-specific wins
  ScopedEnv c("OTEL_SPAN_EVENT_COUNT_LIMIT", "3");
  ScopedEnv d("OTEL_SPAN_LINK_COUNT_LIMIT", "not-a-number");  // logged, ignored
  ScopedEnv e("OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT", "10");
  SpanLimits l = SpanLimits::FromEnvironment();
  EXPECT_EQ(l.attribute_count, 5u);
  EXPECT_EQ(l.event_count, 3u);
  EXPECT_EQ(l.link_count, 128u);
  EXPECT_EQ(l.attribute_value_length, 10u);
  EXPECT_EQ(l.event_attribute_count, 128u);
}

TEST(Span, StartAttributesAreVisibleAndLimited) {
  InMemorySpanRecorder rec;
  SpanLimits limits;
  limits.attribute_count = 1;
  auto provider = RecordingProvider(rec, nullptr, limits);
  {
    StartSpanOptions o;
    o.attributes = {{"a", int64_t{1}}, {"b", int64_t{2}}};
    provider->GetTracer("t").StartSpan("op", o);
  }
  auto s = rec.spans().at(0);
  EXPECT_EQ(s.attributes.size(), 1u);
  EXPECT_EQ(s.dropped_attributes_count, 1u);
}

// Two different keys with the same KeyBit: the filter says "maybe present"
// for the second, which must be compared, not merged.
std::pair<std::string, std::string> CollidingKeys() {
  const std::string first = "k.a";
  for (char c = 'a'; c <= 'z'; ++c) {
    for (char d = 'a'; d <= 'z'; ++d) {
      std::string other = {'q', c, d};
      if (other != first && internal::KeyBit(other) == internal::KeyBit(first)) {
        return {first, other};
      }
    }
  }
  ADD_FAILURE() << "no KeyBit collision found";
  return {first, "none"};
}

// Every way a list of attributes reaches a span applies the same rules:
// empty keys dropped, a repeated key keeps its first position and its last
// value, keys that merely share a filter bit both kept.
TEST(Span, EveryPathCanonicalisesAListTheSameWay) {
  const auto [k1, k2] = CollidingKeys();
  ASSERT_EQ(internal::KeyBit(k1), internal::KeyBit(k2));
  auto input = [&] {
    return Attributes{{"a", int64_t{1}}, {"", int64_t{2}}, {"b", int64_t{3}},
                      {"a", int64_t{4}}, {k1, int64_t{5}}, {k2, int64_t{6}}};
  };
  const std::vector<std::pair<std::string, int64_t>> want = {{"a", 4}, {"b", 3}, {k1, 5}, {k2, 6}};
  SpanLimits tight;                  // forces Start and SetAttributes off their fast paths
  tight.attribute_value_length = 1;  // no value is a string, so nothing is truncated
  tight.attribute_count = 4;
  const std::vector<std::pair<std::string, std::function<void(const Tracer&)>>> paths = {
      {"Start, fast path",
       [&](const Tracer& t) {
         StartSpanOptions o;
         o.attributes = input();
         t.StartSpan("op", o);
       }},
      {"SetAttributes, fast path",
       [&](const Tracer& t) { t.StartSpan("op").SetAttributes(input()); }},
      {"SetAttributes after an attribute",
       [&](const Tracer& t) {
         Span s = t.StartSpan("op");
         s.SetAttribute("a", int64_t{0});
         s.SetAttributes(input());
       }},
      {"one by one",
       [&](const Tracer& t) {
         Span s = t.StartSpan("op");
         for (auto& kv : input()) s.SetAttribute(std::move(kv.key), std::move(kv.value));
       }},
      {"one by one, typed (SetAttribute's in-place path)",
       [&](const Tracer& t) {
         Span s = t.StartSpan("op");
         for (auto& kv : input()) s.SetAttribute(std::move(kv.key), std::get<int64_t>(kv.value));
       }},
  };
  for (bool limited : {false, true}) {
    for (const auto& [name, run] : paths) {
      SCOPED_TRACE(name + (limited ? " (limits path)" : ""));
      InMemorySpanRecorder rec;
      auto provider = limited ? RecordingProvider(rec, nullptr, tight) : RecordingProvider(rec);
      run(provider->GetTracer("t"));
      const auto spans = rec.spans();  // a copy
      ASSERT_EQ(spans.size(), 1u);
      const auto& got = spans[0].attributes;
      ASSERT_EQ(got.size(), want.size());
      for (size_t i = 0; i < want.size(); ++i) {
        EXPECT_EQ(got[i].key.view(), want[i].first) << i;
        EXPECT_EQ(std::get<int64_t>(got[i].value), want[i].second) << i;
      }
      EXPECT_EQ(spans[0].dropped_attributes_count, 0u);
    }
  }
}

// SetAttribute with a string or an integer builds the entry in place
// (Span::PutString, PutInt): the limits apply exactly as on the general
// path, at their boundaries.
TEST(Span, TypedSetAttributeHonoursLimitsAtTheBoundary) {
  InMemorySpanRecorder rec;
  SpanLimits limits;
  limits.attribute_count = 3;
  limits.attribute_value_length = 4;
  auto provider = RecordingProvider(rec, nullptr, limits);
  {
    Span span = provider->GetTracer("t").StartSpan("op");
    const std::string five = "abcde";
    span.SetAttribute("view", std::string_view("abcd"));  // at the length limit: kept whole
    span.SetAttribute("moved", std::string("abcde"));     // one over: truncated
    span.SetAttribute("copied", five);                    // one over, from an lvalue
    span.SetAttribute("int", 7);                          // the 4th: dropped, counted
    span.SetAttribute("view", "wxyz1");                   // replaces, truncated
    span.SetAttribute("", "ignored");                     // empty keys never count
    span.SetAttribute(std::string("moved"), int64_t{5});  // replaces, type changes
  }
  const SpanData s = rec.spans().at(0);
  ASSERT_EQ(s.attributes.size(), 3u);
  EXPECT_EQ(s.dropped_attributes_count, 1u);
  EXPECT_EQ(s.attributes[0].key, "view");
  EXPECT_EQ(std::get<std::string>(s.attributes[0].value), "wxyz");
  EXPECT_EQ(s.attributes[1].key, "moved");
  EXPECT_EQ(std::get<int64_t>(s.attributes[1].value), 5);
  EXPECT_EQ(s.attributes[2].key, "copied");
  EXPECT_EQ(std::get<std::string>(s.attributes[2].value), "abcd");
}

TEST(Context, ScopeMakesSpanCurrentAndChildrenFollow) {
  InMemorySpanRecorder rec;
  auto provider = RecordingProvider(rec);
  Tracer tracer = provider->GetTracer("t");
  EXPECT_FALSE(CurrentSpanContext().IsValid());
  {
    Span parent = tracer.StartSpan("parent");
    Scope scope(parent);
    EXPECT_EQ(CurrentSpan(), &parent);
    EXPECT_EQ(CurrentSpanContext(), parent.context());
    {
      Span child = tracer.StartSpan("child");
      Scope inner(child);
      Span grandchild = tracer.StartSpan("grandchild");
      EXPECT_EQ(grandchild.context().trace_id(), parent.context().trace_id());
    }
    EXPECT_EQ(CurrentSpan(), &parent);
  }
  EXPECT_EQ(CurrentSpan(), nullptr);
  auto spans = rec.spans();
  ASSERT_EQ(spans.size(), 3u);
  // End order: grandchild, child, parent.
  EXPECT_EQ(spans[0].parent_span_id, spans[1].context.span_id());
  EXPECT_EQ(spans[1].parent_span_id, spans[2].context.span_id());
  EXPECT_FALSE(spans[2].parent_span_id.IsValid());
  EXPECT_FALSE(spans[1].parent_is_remote);
}

TEST(Context, ExplicitParentWorksOnAnotherThread) {
  InMemorySpanRecorder rec;
  auto provider = RecordingProvider(rec);
  Tracer tracer = provider->GetTracer("t");
  Span parent = tracer.StartSpan("parent");
  SpanContext parent_ctx = parent.context();
  std::thread worker([&] {
    StartSpanOptions o;
    o.parent = parent_ctx;
    Span child = tracer.StartSpan("async-child", o);
  });
  worker.join();
  parent.End();
  auto child = rec.SpansNamed("async-child").at(0);
  EXPECT_EQ(child.parent_span_id, parent_ctx.span_id());
  EXPECT_EQ(child.context.trace_id(), parent_ctx.trace_id());
}

TEST(Context, RootOptionIgnoresCurrentSpan) {
  InMemorySpanRecorder rec;
  auto provider = RecordingProvider(rec);
  Tracer tracer = provider->GetTracer("t");
  Span parent = tracer.StartSpan("parent");
  Scope scope(parent);
  StartSpanOptions o;
  o.root = true;
  Span root = tracer.StartSpan("root", o);
  EXPECT_NE(root.context().trace_id(), parent.context().trace_id());
}

TEST(Context, ScopeKeepsBaggage) {
  Baggage b = Baggage().Set("tenant", "acme");
  Scope outer(Context(SpanContext(), b));
  InMemorySpanRecorder rec;
  auto provider = RecordingProvider(rec);
  Span span = provider->GetTracer("t").StartSpan("op");
  Scope inner(span);
  EXPECT_EQ(Context::Current().baggage().Get("tenant").value_or(""), "acme");
  EXPECT_EQ(Context::Current().span_context(), span.context());
}

TEST(Tracer, RootsCarryTheRandomFlagAndChildrenKeepIt) {
  InMemorySpanRecorder rec;
  auto provider = RecordingProvider(rec);
  Tracer tracer = provider->GetTracer("t");
  Span root = tracer.StartSpan("root");
  EXPECT_TRUE(root.context().IsRandom());
  EXPECT_TRUE(root.context().IsSampled());
  // A remote parent without the random flag: the child must not invent it.
  SpanContext remote(GenerateTraceId(), GenerateSpanId(), trace_flags::kSampled, true);
  StartSpanOptions o;
  o.parent = remote;
  Span child = tracer.StartSpan("child", o);
  EXPECT_FALSE(child.context().IsRandom());
  EXPECT_TRUE(child.context().IsSampled());
  child.End();
  EXPECT_TRUE(rec.spans().at(0).parent_is_remote);
}

TEST(Tracer, DisabledSdkIsANoOpThatStillPropagates) {
  ScopedEnv e("OTEL_SDK_DISABLED", "TRUE");
  ASSERT_TRUE(SdkDisabledByEnvironment());
  InMemorySpanRecorder rec;
  TracerProviderOptions o;
  o.disabled = SdkDisabledByEnvironment();
  o.processors.push_back(rec.MakeProcessor());
  TracerProvider provider(std::move(o));
  Tracer tracer = provider.GetTracer("t");
  EXPECT_FALSE(tracer.enabled());
  SpanContext remote(GenerateTraceId(), GenerateSpanId(), trace_flags::kSampled, true);
  StartSpanOptions so;
  so.parent = remote;
  Span span = tracer.StartSpan("op", so);
  EXPECT_FALSE(span.IsRecording());
  EXPECT_EQ(span.context(), remote);
  span.SetAttribute("k", 1);
  span.End();
  EXPECT_EQ(rec.size(), 0u);
}

TEST(Tracer, DisabledOnlyByTrue) {
  ScopedEnv e("OTEL_SDK_DISABLED", "yes");
  EXPECT_FALSE(SdkDisabledByEnvironment());
}

TEST(Tracer, DiagnosticsCountStartedAndEnded) {
  auto before = Diagnostics();
  InMemorySpanRecorder rec;
  auto provider = RecordingProvider(rec);
  { provider->GetTracer("t").StartSpan("op"); }
  auto after = Diagnostics();
  EXPECT_GE(after.spans_started - before.spans_started, 1u);
  EXPECT_GE(after.spans_ended - before.spans_ended, 1u);
  EXPECT_GE(after.spans_exported - before.spans_exported, 1u);
}

TEST(Tracer, SpansAfterShutdownAreNotExported) {
  InMemorySpanRecorder rec;
  auto provider = RecordingProvider(rec);
  Tracer tracer = provider->GetTracer("t");
  Span open = tracer.StartSpan("open");
  provider->Shutdown();
  Span late = tracer.StartSpan("late");
  EXPECT_FALSE(late.IsRecording());
  open.End();
  EXPECT_EQ(rec.size(), 0u);
}

TEST(Tracer, SpanOutlivingItsProviderEndsSafely) {
  InMemorySpanRecorder rec;
  Span span;
  {
    auto provider = RecordingProvider(rec);
    span = provider->GetTracer("t").StartSpan("op");
  }
  span.End();  // provider is gone: must not crash (ASan checks)
  EXPECT_EQ(rec.size(), 0u);
}

}  // namespace
}  // namespace prism::tracing
