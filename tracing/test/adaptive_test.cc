#include "prism/tracing/adaptive.h"

#include <gtest/gtest.h>

#include <atomic>
#include <set>
#include <thread>

#include "prism/tracing/in_memory_recorder.h"
#include "prism/tracing/tracer.h"

namespace prism::tracing {
namespace {

namespace cs = consistent_sampling;

// A trace id whose low 56 bits are `r` (the consistent-sampling randomness).
TraceId WithRandomness(uint64_t r) {
  std::array<uint8_t, 16> b{};
  b[0] = 0x5a;
  for (int i = 15; i >= 9; --i, r >>= 8) b[i] = static_cast<uint8_t>(r & 0xff);
  return TraceId(b);
}

SpanContext RemoteParent(const TraceId& id, bool sampled) {
  std::array<uint8_t, 8> s{1, 2, 3, 4, 5, 6, 7, 8};
  return SpanContext(id, SpanId(s), static_cast<uint8_t>(trace_flags::kRandom | (sampled ? 1 : 0)),
                     true);
}

// One provider with adaptive sampling on simulated time and an in-memory
// exporter; no sweeper thread (the tests call Sweep).
struct Fixture {
  explicit Fixture(AdaptiveOptions o = {}) {
    o.steady_now_ns = [this] { return now_ns.load(); };
    o.background_sweep = false;
    adaptive = std::make_shared<AdaptiveSampling>(o);
    TracerProviderOptions p;
    p.adaptive = adaptive;
    p.processors.push_back(recorder.MakeProcessor());
    provider = std::make_unique<TracerProvider>(std::move(p));
    tracer = provider->GetTracer("test");
  }
  void Advance(std::chrono::milliseconds d) { now_ns += d.count() * 1'000'000; }

  // A local root with two children, ended in order; `error_child` makes the
  // second child an error. The root lasts `root_ms` (explicit end time).
  TraceId Request(const SpanContext& parent, uint64_t root_ms = 1, bool error_child = false) {
    StartSpanOptions o;
    o.kind = SpanKind::kServer;
    if (parent.IsValid()) {
      o.parent = parent;
    } else {
      o.root = true;
    }
    Span root = tracer.StartSpan("root", std::move(o));
    for (int i = 0; i < 2; ++i) {
      StartSpanOptions c;
      c.parent = root.context();
      Span child = tracer.StartSpan(i == 0 ? "child0" : "child1", std::move(c));
      if (i == 1 && error_child) child.SetStatus(StatusCode::kError, "boom");
      child.End();
    }
    TraceId id = root.context().trace_id();
    root.End(root.data()->start_unix_nano + root_ms * 1'000'000);
    return id;
  }

  size_t Exported(const TraceId& id) const {
    size_t n = 0;
    for (const auto& s : recorder.spans()) n += s.context.trace_id() == id;
    return n;
  }

  std::atomic<int64_t> now_ns{1'000'000'000};
  InMemorySpanRecorder recorder;
  std::shared_ptr<AdaptiveSampling> adaptive;
  std::unique_ptr<TracerProvider> provider;
  Tracer tracer;
};

AdaptiveOptions Head(double ratio = 0.0, int slow_ms = 100) {
  AdaptiveOptions o;
  o.ratio = ratio;
  o.slow = std::chrono::milliseconds(slow_ms);
  return o;
}

AdaptiveOptions Downstream() {
  AdaptiveOptions o = Head();
  o.role = AdaptiveOptions::Role::kDownstream;
  o.decision_wait = std::chrono::milliseconds(500);
  return o;
}

std::string ReasonOf(const SpanData& s) {
  const AttributeValue* v = s.FindAttribute(kSamplingReasonKey.view());
  return v ? std::get<std::string>(*v) : "";
}

TEST(AdaptiveOptions, ParsesEveryKeyAndRefusesBadOnes) {
  std::string error;
  auto o = AdaptiveOptions::Parse(
      "ratio=0.05, slow_ms=250,buffer_mb=8,wait_ms=200,timeout_ms=9000,role=downstream", &error);
  ASSERT_TRUE(o) << error;
  EXPECT_DOUBLE_EQ(o->ratio, 0.05);
  EXPECT_EQ(o->slow.count(), 250);
  EXPECT_EQ(o->buffer_bytes, size_t{8} << 20);
  EXPECT_EQ(o->decision_wait.count(), 200);
  EXPECT_EQ(o->trace_timeout.count(), 9000);
  EXPECT_EQ(o->role, AdaptiveOptions::Role::kDownstream);
  ASSERT_TRUE(AdaptiveOptions::Parse("", &error));

  struct Bad {
    const char* arg;
    const char* message;
  } cases[] = {
      {"ratio=1.5", "'ratio=1.5': expected a ratio in [0, 1]"},
      {"ratio=", "'ratio=': expected a ratio in [0, 1]"},
      {"slow_ms=-1", "'slow_ms=-1': expected milliseconds in [0, 86400000]"},
      {"buffer_mb=0", "'buffer_mb=0': expected MiB in [1, 65536]"},
      {"wait_ms=abc", "'wait_ms=abc': expected milliseconds in [1, 600000]"},
      {"role=tail", "'role=tail': expected head or downstream"},
      {"speed=1", "unknown key 'speed' (ratio, slow_ms, buffer_mb, wait_ms, timeout_ms, role)"},
  };
  for (const auto& c : cases) {
    error.clear();
    EXPECT_FALSE(AdaptiveOptions::Parse(c.arg, &error)) << c.arg;
    EXPECT_EQ(error, c.message) << c.arg;
  }
}

TEST(Adaptive, NormalTrafficIsDroppedWholeAndCounted) {
  Fixture f(Head());
  TraceId id = f.Request({});
  EXPECT_EQ(f.Exported(id), 0u);
  auto c = f.adaptive->Counters();
  EXPECT_EQ(c.traces, 1u);
  EXPECT_EQ(c.dropped, 1u);
  EXPECT_EQ(c.buffered_spans, 0u);
  EXPECT_EQ(c.buffered_bytes, 0u);
}

TEST(Adaptive, AnErrorAnywhereKeepsTheWholeTrace) {
  Fixture f(Head());
  TraceId id = f.Request({}, 1, /*error_child=*/true);
  auto spans = f.recorder.spans();
  ASSERT_EQ(f.Exported(id), 3u);
  for (const auto& s : spans) EXPECT_TRUE(s.context.IsSampled()) << s.name;
  // The reason on the local root; no probabilistic threshold anywhere.
  for (const auto& s : spans) {
    EXPECT_EQ(ReasonOf(s), s.name == "root" ? "error" : "") << s.name;
    EXPECT_FALSE(s.context.trace_state().Get("ot")) << s.name;
  }
  EXPECT_EQ(f.adaptive->Counters().kept_error, 1u);
  EXPECT_TRUE(f.adaptive->IsKept(id));
}

TEST(Adaptive, ASlowLocalRootKeepsTheTraceAtTheThreshold) {
  Fixture f(Head(0.0, 100));
  TraceId fast = f.Request({}, 99);
  TraceId slow = f.Request({}, 100);
  EXPECT_EQ(f.Exported(fast), 0u);
  EXPECT_EQ(f.Exported(slow), 3u);
  auto c = f.adaptive->Counters();
  EXPECT_EQ(c.kept_slow, 1u);
  EXPECT_EQ(c.dropped, 1u);
  for (const auto& s : f.recorder.SpansNamed("root")) EXPECT_EQ(ReasonOf(s), "slow");
}

TEST(Adaptive, SlowRuleOffWhenZero) {
  Fixture f(Head(0.0, 0));
  EXPECT_EQ(f.Exported(f.Request({}, 5000)), 0u);
}

TEST(Adaptive, TheCallersSampledFlagIsHonoured) {
  Fixture f(Head());
  TraceId id = WithRandomness(1);  // far below any ratio threshold
  f.Request(RemoteParent(id, true));
  EXPECT_EQ(f.Exported(id), 3u);
  for (const auto& s : f.recorder.SpansNamed("root")) EXPECT_EQ(ReasonOf(s), "parent");
  EXPECT_EQ(f.adaptive->Counters().kept_parent, 1u);
}

TEST(Adaptive, TheRatioShareFollowsTheThresholdRuleForFixedIds) {
  Fixture f(Head(0.25, 0));  // T = 0xc0000000000000
  const uint64_t t = cs::ThresholdForProbability(0.25);
  ASSERT_EQ(t, 0xc0000000000000ULL);
  const uint64_t rs[] = {0, 1, t - 1, t, t + 1, cs::kMaxThreshold - 1, 0x3fffffffffffff};
  for (uint64_t r : rs) {
    TraceId id = WithRandomness(r);
    f.Request(RemoteParent(id, false));  // unsampled caller: the share applies
    EXPECT_EQ(f.Exported(id), r >= t ? 3u : 0u) << std::hex << r;
  }
  for (const auto& s : f.recorder.spans()) {
    EXPECT_EQ(s.context.trace_state().Get("ot").value_or(""), "th:c") << s.name;
    if (s.name == "root") {
      EXPECT_EQ(ReasonOf(s), "ratio");
    }
  }
  EXPECT_EQ(f.adaptive->Counters().kept_ratio, 3u);
}

TEST(Adaptive, DownstreamWaitsForItsCallersVerdict) {
  Fixture f(Downstream());
  TraceId kept = f.Request(RemoteParent(WithRandomness(7), false));
  TraceId dropped = f.Request(RemoteParent(WithRandomness(9), false));
  EXPECT_EQ(f.recorder.size(), 0u);
  EXPECT_EQ(f.adaptive->Counters().buffered_spans, 6u);
  f.Advance(std::chrono::milliseconds(10));
  f.adaptive->Keep(kept, SamplingReason::kSlow);  // the proxy's trigger
  EXPECT_EQ(f.Exported(kept), 3u);
  f.Advance(std::chrono::milliseconds(489));  // 499 ms after its root ended
  f.adaptive->Sweep();
  EXPECT_EQ(f.adaptive->Counters().buffered_spans, 3u);  // still within the wait
  f.Advance(std::chrono::milliseconds(2));
  f.adaptive->Sweep();
  EXPECT_EQ(f.Exported(dropped), 0u);
  auto c = f.adaptive->Counters();
  EXPECT_EQ(c.kept_trigger, 1u);
  EXPECT_EQ(c.dropped, 1u);
  EXPECT_EQ(c.buffered_spans, 0u);
  // Downstream processes mark no reason (the head's root carries it).
  for (const auto& s : f.recorder.spans()) EXPECT_EQ(ReasonOf(s), "");
}

TEST(Adaptive, DownstreamHonoursAnErrorOnItsOwn) {
  Fixture f(Downstream());
  TraceId id = f.Request(RemoteParent(WithRandomness(3), false), 1, true);
  EXPECT_EQ(f.Exported(id), 3u);
  EXPECT_TRUE(f.adaptive->IsKept(id));
}

TEST(Adaptive, ATriggerBeforeTheSpansEndKeepsLateSpans) {
  Fixture f(Downstream());
  TraceId id = WithRandomness(11);
  f.adaptive->Keep(id, SamplingReason::kError);  // the proxy gave up first
  f.Request(RemoteParent(id, false));
  EXPECT_EQ(f.Exported(id), 3u);
  auto c = f.adaptive->Counters();
  EXPECT_EQ(c.late_kept, 3u);
  EXPECT_EQ(c.unmatched_keeps, 1u);
}

TEST(Adaptive, LateSpansOfADroppedTraceAreDiscardedAndCounted) {
  Fixture f(Head());
  StartSpanOptions o;
  o.root = true;
  Span root = f.tracer.StartSpan("root", std::move(o));
  StartSpanOptions c;
  c.parent = root.context();
  Span late = f.tracer.StartSpan("late", std::move(c));
  TraceId id = root.context().trace_id();
  root.End();  // dropped here
  late.End();  // after the decision
  EXPECT_EQ(f.Exported(id), 0u);
  EXPECT_EQ(f.adaptive->Counters().late_dropped, 1u);
  // The late span did not start an orphan trace that a timeout would keep.
  f.Advance(std::chrono::hours(1));
  f.adaptive->Sweep();
  EXPECT_EQ(f.Exported(id), 0u);
}

TEST(Adaptive, AStuckTraceIsKeptByTheTimeout) {
  AdaptiveOptions o = Head();
  o.trace_timeout = std::chrono::milliseconds(1000);
  Fixture f(o);
  StartSpanOptions so;
  so.root = true;
  Span root = f.tracer.StartSpan("stuck", std::move(so));
  StartSpanOptions c;
  c.parent = root.context();
  f.tracer.StartSpan("done-child", std::move(c)).End();
  TraceId id = root.context().trace_id();
  f.Advance(std::chrono::milliseconds(999));
  f.adaptive->Sweep();
  EXPECT_EQ(f.Exported(id), 0u);
  f.Advance(std::chrono::milliseconds(1));
  f.adaptive->Sweep();
  EXPECT_EQ(f.Exported(id), 1u);
  root.End();  // the root ends at last: a late span of a kept trace
  EXPECT_EQ(f.Exported(id), 2u);
  auto counters = f.adaptive->Counters();
  EXPECT_EQ(counters.timed_out, 1u);
  EXPECT_EQ(counters.kept_slow, 1u);
  EXPECT_EQ(counters.late_kept, 1u);
}

TEST(Adaptive, AtTheMemoryBoundTheOldestTracesAreEvictedWhole) {
  AdaptiveOptions o = Downstream();
  o.buffer_bytes = 16 * 1024;
  Fixture f(o);
  std::vector<TraceId> ids;
  for (int i = 0; i < 200; ++i) {
    ids.push_back(f.Request(RemoteParent(WithRandomness(100 + i), false)));
    f.Advance(std::chrono::milliseconds(1));
    EXPECT_LE(f.adaptive->Counters().buffered_bytes, o.buffer_bytes);
  }
  auto c = f.adaptive->Counters();
  ASSERT_GT(c.evicted, 0u);
  EXPECT_EQ(c.evicted_spans, c.evicted * 3);  // whole traces, never parts
  EXPECT_EQ(c.buffered_spans % 3, 0u);
  // The oldest went first: keeping them finds nothing, the newest are whole.
  f.adaptive->Keep(ids.front(), SamplingReason::kSlow);
  EXPECT_EQ(f.Exported(ids.front()), 0u);
  f.adaptive->Keep(ids.back(), SamplingReason::kSlow);
  EXPECT_EQ(f.Exported(ids.back()), 3u);
}

TEST(Adaptive, OneHugeTraceIsEvictedWholeWithoutStarvingOthers) {
  AdaptiveOptions o = Head();
  o.max_trace_spans = 10;
  Fixture f(o);
  StartSpanOptions so;
  so.root = true;
  Span root = f.tracer.StartSpan("huge", std::move(so));
  for (int i = 0; i < 50; ++i) {
    StartSpanOptions c;
    c.parent = root.context();
    f.tracer.StartSpan("part", std::move(c)).End();
  }
  root.SetStatus(StatusCode::kError, "even so");
  TraceId huge = root.context().trace_id();
  root.End();
  TraceId normal = f.Request({}, 1, true);
  EXPECT_EQ(f.Exported(huge), 0u);  // never a part of it
  EXPECT_EQ(f.Exported(normal), 3u);
  auto c = f.adaptive->Counters();
  EXPECT_EQ(c.evicted, 1u);
  EXPECT_EQ(c.evicted_spans, 11u);
  EXPECT_EQ(c.late_dropped, 40u);  // the rest of it, and its root
}

TEST(Adaptive, RememberedDecisionsAreForgotten) {
  AdaptiveOptions o = Head();
  o.remember = std::chrono::milliseconds(100);
  Fixture f(o);
  TraceId id = f.Request({}, 1, true);
  EXPECT_TRUE(f.adaptive->IsKept(id));
  f.Advance(std::chrono::milliseconds(101));
  f.adaptive->Sweep();
  EXPECT_FALSE(f.adaptive->IsKept(id));
}

TEST(Adaptive, ConcurrentRequestsKeepExactlyTheErrors) {
  AdaptiveOptions o = Head(0.0, 0);
  Fixture f(o);
  std::vector<std::thread> threads;
  std::mutex mu;
  std::set<std::string> error_ids;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 500; ++i) {
        bool err = (i + t) % 10 == 0;
        TraceId id = f.Request({}, 1, err);
        if (err) {
          std::lock_guard<std::mutex> lock(mu);
          error_ids.insert(id.ToHex());
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  std::map<std::string, int> per_trace;
  for (const auto& s : f.recorder.spans()) per_trace[s.context.trace_id().ToHex()]++;
  EXPECT_EQ(per_trace.size(), error_ids.size());
  for (const auto& [id, n] : per_trace) {
    EXPECT_TRUE(error_ids.count(id)) << id;
    EXPECT_EQ(n, 3) << id;
  }
  auto c = f.adaptive->Counters();
  EXPECT_EQ(c.kept_error, error_ids.size());
  EXPECT_EQ(c.dropped + c.kept_error, 2000u);
  EXPECT_EQ(c.buffered_spans, 0u);
}

// Deferred recording (StartSpanOptions::defer / replay): an undecided
// trace's spans record nothing while they run; kept, they are recorded
// afterwards with the contexts they were handed, and exported as kept.
TEST(Adaptive, DeferredSpansRecordNothingAndReplayWithTheirContexts) {
  AdaptiveOptions o;
  o.ratio = 0;
  o.slow = std::chrono::milliseconds(0);
  Fixture f(o);
  StartSpanOptions so;
  so.kind = SpanKind::kServer;
  so.parent = RemoteParent(WithRandomness(7), false);
  so.defer = true;
  Span server = f.tracer.StartSpan("server", std::move(so));
  EXPECT_FALSE(server.IsRecording());
  EXPECT_TRUE(server.deferred());
  // The context a recorded span would have had: same trace, a new span id,
  // unsampled, the caller's random flag.
  EXPECT_EQ(server.context().trace_id(), WithRandomness(7));
  EXPECT_TRUE(server.context().span_id().IsValid());
  EXPECT_FALSE(server.context().IsSampled());
  EXPECT_EQ(server.context().flags(), trace_flags::kRandom);
  StartSpanOptions co;
  co.kind = SpanKind::kClient;
  co.parent = server.context();
  co.defer = true;
  Span client = f.tracer.StartSpan("client", std::move(co));
  EXPECT_TRUE(client.deferred());
  const SpanContext server_ctx = server.context(), client_ctx = client.context();
  client.End();
  server.End();  // a deferred span ends without recording anything
  EXPECT_EQ(f.recorder.spans().size(), 0u);
  EXPECT_EQ(f.adaptive->Counters().buffered_spans, 0u);

  // Kept: replayed with the same ids and the times they ran.
  f.adaptive->KeepReplayed(server_ctx.trace_id(), SamplingReason::kSlow);
  StartSpanOptions rs;
  rs.kind = SpanKind::kServer;
  rs.parent = RemoteParent(WithRandomness(7), false);
  rs.replay = server_ctx;
  rs.start_unix_nano = 1000;
  Span rserver = f.tracer.StartSpan("server", std::move(rs));
  ASSERT_TRUE(rserver.IsRecording());
  StartSpanOptions rc;
  rc.kind = SpanKind::kClient;
  rc.parent = rserver.context();
  rc.replay = client_ctx;
  rc.start_unix_nano = 1100;
  Span rclient = f.tracer.StartSpan("client", std::move(rc));
  rclient.End(1900);
  rserver.End(2000);
  auto spans = f.recorder.spans();
  ASSERT_EQ(spans.size(), 2u);
  EXPECT_EQ(spans[0].context.span_id(), client_ctx.span_id());
  EXPECT_EQ(spans[0].parent_span_id, server_ctx.span_id());
  EXPECT_EQ(spans[0].start_unix_nano, 1100u);
  EXPECT_EQ(spans[0].end_unix_nano, 1900u);
  EXPECT_EQ(spans[1].context.span_id(), server_ctx.span_id());
  EXPECT_EQ(spans[1].parent_span_id, RemoteParent(WithRandomness(7), false).span_id());
  for (const auto& sp : spans) EXPECT_TRUE(sp.context.IsSampled());
  const AttributeValue* reason = spans[1].FindAttribute(kSamplingReasonKey.view());
  ASSERT_TRUE(reason);
  EXPECT_EQ(std::get<std::string>(*reason), "slow");
  EXPECT_FALSE(spans[0].FindAttribute(kSamplingReasonKey.view()));
  auto c = f.adaptive->Counters();
  EXPECT_EQ(c.traces, 1u);  // the replay asks the sampler nothing
  EXPECT_EQ(c.kept_slow, 1u);
  EXPECT_EQ(c.late_kept, 0u);
  EXPECT_EQ(c.unmatched_keeps, 0u);
}

TEST(Adaptive, DropDeferredCountsAndDropsWhatOthersBuffered) {
  AdaptiveOptions o;
  o.ratio = 0;
  o.slow = std::chrono::milliseconds(0);
  Fixture f(o);
  StartSpanOptions so;
  so.root = true;
  so.defer = true;
  Span server = f.tracer.StartSpan("server", std::move(so));
  ASSERT_TRUE(server.deferred());
  // Code that does not defer records under the deferred span as usual.
  StartSpanOptions other;
  other.parent = server.context();
  Span inner = f.tracer.StartSpan("inner", std::move(other));
  ASSERT_TRUE(inner.IsRecording());
  inner.End();
  EXPECT_EQ(f.adaptive->Counters().buffered_spans, 1u);
  StartSpanOptions late_opts;
  late_opts.parent = server.context();
  Span late = f.tracer.StartSpan("late", std::move(late_opts));
  f.adaptive->DropDeferred(server.context().trace_id());
  late.End();
  server.End();
  auto c = f.adaptive->Counters();
  EXPECT_EQ(c.dropped, 1u);
  EXPECT_EQ(c.buffered_spans, 0u);
  EXPECT_EQ(c.late_dropped, 1u);
  EXPECT_EQ(f.recorder.spans().size(), 0u);
  // A drop is final.
  f.adaptive->KeepReplayed(server.context().trace_id(), SamplingReason::kError);
  EXPECT_EQ(f.adaptive->Counters().kept_error, 0u);
}

// Only adaptive sampling's undecided traces are deferred: with any other
// sampler `defer` changes nothing.
TEST(Adaptive, DeferIsIgnoredWithoutAdaptiveSampling) {
  InMemorySpanRecorder recorder;
  TracerProviderOptions p;
  p.sampler = MakeAlwaysOnSampler();
  p.processors.push_back(recorder.MakeProcessor());
  TracerProvider provider(std::move(p));
  StartSpanOptions so;
  so.defer = true;
  Span span = provider.GetTracer("t").StartSpan("s", std::move(so));
  EXPECT_TRUE(span.IsRecording());
  EXPECT_FALSE(span.deferred());
  span.End();
  EXPECT_EQ(recorder.spans().size(), 1u);
}

// A deferred local root (AdaptiveSampling::EndDeferred) as a plugin's
// server interceptor hands it over: recorded, with its own context, only if
// the trace is kept; freed unrecorded otherwise.
struct TestDeferred final : DeferredSpan {
  TestDeferred(Tracer t, SpanContext parent, SpanContext context, int* recorded, int* freed)
      : tracer(std::move(t)), parent(parent), context(context), recorded(recorded), freed(freed) {}
  ~TestDeferred() override { ++*freed; }
  void Record() override {
    ++*recorded;
    StartSpanOptions o;
    o.kind = SpanKind::kServer;
    o.parent = parent;
    o.replay = context;
    o.start_unix_nano = 10;
    Span s = tracer.StartSpan("deferred-root", std::move(o));
    s.End(20);
  }
  size_t Bytes() const override { return 100; }
  Tracer tracer;
  SpanContext parent, context;
  int* recorded;
  int* freed;
};

TEST(Adaptive, DeferredRootsAreRecordedOnlyWhenKept) {
  AdaptiveOptions o;
  o.role = AdaptiveOptions::Role::kDownstream;
  o.slow = std::chrono::milliseconds(100);
  Fixture f(o);
  int recorded = 0, freed = 0;
  // Starts a deferred root under an unsampled caller, with one recorded child.
  auto start = [&](uint64_t r) {
    StartSpanOptions so;
    so.kind = SpanKind::kServer;
    so.parent = RemoteParent(WithRandomness(r), false);
    so.defer = true;
    Span root = f.tracer.StartSpan("deferred-root", std::move(so));
    EXPECT_TRUE(root.deferred());
    StartSpanOptions c;
    c.parent = root.context();
    f.tracer.StartSpan("child", std::move(c)).End();
    return root.context();
  };
  auto handover = [&](const SpanContext& ctx, bool error, uint64_t duration_ns) {
    return f.adaptive->EndDeferred(
        ctx,
        std::make_unique<TestDeferred>(f.tracer, RemoteParent(ctx.trace_id(), false), ctx,
                                       &recorded, &freed),
        error, duration_ns);
  };

  // 1. No verdict yet: held, not recorded; the caller's Keep records it.
  SpanContext a = start(1);
  EXPECT_FALSE(handover(a, false, 1'000'000));
  EXPECT_EQ(recorded, 0);
  EXPECT_EQ(f.adaptive->Counters().buffered_spans, 2u);
  f.adaptive->Keep(a.trace_id(), SamplingReason::kSlow);
  EXPECT_EQ(recorded, 1);
  EXPECT_EQ(f.Exported(a.trace_id()), 2u);
  // 2. An error keeps it at once.
  SpanContext b = start(2);
  EXPECT_TRUE(handover(b, true, 1'000'000));
  EXPECT_EQ(recorded, 2);
  EXPECT_EQ(f.Exported(b.trace_id()), 2u);
  // 3. Its own latency too.
  SpanContext c = start(3);
  EXPECT_TRUE(handover(c, false, 100'000'000));
  EXPECT_EQ(recorded, 3);
  // 4. The caller's verdict came first: recorded as it ends (a late span).
  SpanContext d = start(4);
  f.adaptive->Keep(d.trace_id(), SamplingReason::kError);
  EXPECT_TRUE(handover(d, false, 1'000'000));
  EXPECT_EQ(recorded, 4);
  EXPECT_EQ(f.Exported(d.trace_id()), 2u);
  // 5. No verdict within the wait: dropped whole, never recorded, freed.
  SpanContext e = start(5);
  const int freed_before = freed;
  EXPECT_FALSE(handover(e, false, 1'000'000));
  f.Advance(std::chrono::milliseconds(600));
  f.adaptive->Sweep();
  EXPECT_EQ(recorded, 4);
  EXPECT_EQ(freed, freed_before + 1);
  EXPECT_EQ(f.Exported(e.trace_id()), 0u);
  // Every recorded root is the deferred span's own context, sampled now.
  for (const auto& s : f.recorder.spans()) {
    EXPECT_TRUE(s.context.IsSampled());
    if (s.name == "deferred-root") {
      EXPECT_TRUE(s.context.span_id() == a.span_id() || s.context.span_id() == b.span_id() ||
                  s.context.span_id() == c.span_id() || s.context.span_id() == d.span_id());
    }
  }
  auto counters = f.adaptive->Counters();
  EXPECT_EQ(counters.kept_trigger, 2u);  // a and d
  EXPECT_EQ(counters.kept_error, 1u);
  EXPECT_EQ(counters.kept_slow, 1u);
  EXPECT_EQ(counters.dropped, 1u);
  EXPECT_EQ(counters.late_kept, 1u);  // d's root, after its verdict
  EXPECT_EQ(counters.buffered_spans, 0u);
  EXPECT_EQ(counters.buffered_bytes, 0u);
}

}  // namespace
}  // namespace prism::tracing
