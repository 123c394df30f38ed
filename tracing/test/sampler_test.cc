#include "prism/tracing/sampler.h"

#include <gtest/gtest.h>

#include "prism/tracing/adaptive.h"
#include "test_util.h"

namespace prism::tracing {
namespace {

using testing::ScopedEnv;
namespace cs = consistent_sampling;

SamplingResult Decide(const Sampler& s, const TraceId& id, const SpanContext& parent = {}) {
  Attributes attrs;
  std::vector<Link> links;
  return s.ShouldSample(SamplingParameters{parent, id, "op", SpanKind::kInternal, attrs, links});
}

// A trace id whose low 56 bits are `r`.
TraceId WithRandomness(uint64_t r) {
  std::array<uint8_t, 16> b{};
  b[0] = 0xab;  // the high bytes must not matter
  for (int i = 15; i >= 9; --i, r >>= 8) b[i] = static_cast<uint8_t>(r & 0xff);
  return TraceId(b);
}

TEST(ConsistentSampling, ThresholdsMatchTheSpecExamples) {
  EXPECT_EQ(cs::ThresholdForProbability(1.0), 0u);
  EXPECT_EQ(cs::EncodeThreshold(cs::ThresholdForProbability(1.0)), "0");
  EXPECT_EQ(cs::EncodeThreshold(cs::ThresholdForProbability(0.5)), "8");
  EXPECT_EQ(cs::EncodeThreshold(cs::ThresholdForProbability(0.25)), "c");
  EXPECT_EQ(cs::EncodeThreshold(cs::ThresholdForProbability(0.125)), "e");
  EXPECT_EQ(cs::EncodeThreshold(cs::ThresholdForProbability(1.0 / 16)), "f");
  // 1%: T = 2^56 - round(0.01 * 2^56), the full-precision value whose
  // 4- and 5-digit roundings are the spec table's fd70a / fd70a4.
  EXPECT_EQ(cs::ThresholdForProbability(0.01), 0xfd70a3d70a3d71ULL);
  EXPECT_EQ(cs::EncodeThreshold(0xfd70a3d70a3d71ULL), "fd70a3d70a3d71");
  EXPECT_EQ(cs::ThresholdForProbability(0.0), cs::kMaxThreshold);
}

TEST(ConsistentSampling, DecodeThreshold) {
  EXPECT_EQ(cs::DecodeThreshold("c"), 0xc0000000000000ULL);
  EXPECT_EQ(cs::DecodeThreshold("0"), 0u);
  EXPECT_EQ(cs::DecodeThreshold("fd70a4"), 0xfd70a400000000ULL);
  EXPECT_FALSE(cs::DecodeThreshold(""));
  EXPECT_FALSE(cs::DecodeThreshold("C"));
  EXPECT_FALSE(cs::DecodeThreshold("123456789abcdef"));  // 15 digits
}

TEST(TraceIdRatio, KeepsIffRandomnessAtLeastThreshold) {
  auto s = MakeTraceIdRatioSampler(0.01);
  const uint64_t t = 0xfd70a3d70a3d71ULL;
  struct Case {
    uint64_t r;
    bool keep;
  } cases[] = {
      {t, true},     {t - 1, false},
      {t + 1, true}, {0x00ffffffffffffffULL, true},
      {0, false},    {0x80000000000000ULL, false},
  };
  for (const auto& c : cases) {
    auto r = Decide(*s, WithRandomness(c.r));
    EXPECT_EQ(r.decision == SamplingDecision::kRecordAndSample, c.keep) << std::hex << c.r;
    if (c.keep) {
      ASSERT_TRUE(r.trace_state);
      EXPECT_EQ(r.trace_state->Get("ot").value_or(""), "th:fd70a3d70a3d71");
    } else {
      EXPECT_FALSE(r.trace_state && r.trace_state->Get("ot"));
    }
  }
}

TEST(TraceIdRatio, KnownTraceIds) {
  // The W3C example trace id: low 56 bits 0xce929d0e0e4736 < 0xfd70a3..., so
  // 1% drops it; 25% (T = 0xc0000000000000) keeps it.
  TraceId w3c = TraceId::FromHex("4bf92f3577b34da6a3ce929d0e0e4736");
  EXPECT_EQ(Decide(*MakeTraceIdRatioSampler(0.01), w3c).decision, SamplingDecision::kDrop);
  EXPECT_EQ(Decide(*MakeTraceIdRatioSampler(0.25), w3c).decision,
            SamplingDecision::kRecordAndSample);
  EXPECT_EQ(Decide(*MakeTraceIdRatioSampler(0.1), w3c).decision, SamplingDecision::kDrop);
  TraceId high = TraceId::FromHex("0000000000000000fffffffffffffff0");
  EXPECT_EQ(Decide(*MakeTraceIdRatioSampler(0.0001), high).decision,
            SamplingDecision::kRecordAndSample);
  EXPECT_EQ(Decide(*MakeTraceIdRatioSampler(0.0), high).decision, SamplingDecision::kDrop);
  EXPECT_EQ(Decide(*MakeTraceIdRatioSampler(1.0), WithRandomness(0)).decision,
            SamplingDecision::kRecordAndSample);
}

TEST(TraceIdRatio, ExplicitRandomnessWinsAndOtherSubkeysSurvive) {
  auto s = MakeTraceIdRatioSampler(0.5);
  // The trace id says drop (R = 0), rv says keep.
  TraceState ts = TraceState::Parse("ot=rv:ffffffffffffff;xx:1,vendor=v");
  SpanContext parent(WithRandomness(0), GenerateSpanId(), trace_flags::kSampled, true, ts);
  auto r = Decide(*s, parent.trace_id(), parent);
  EXPECT_EQ(r.decision, SamplingDecision::kRecordAndSample);
  ASSERT_TRUE(r.trace_state);
  EXPECT_EQ(r.trace_state->Get("ot").value_or(""), "th:8;rv:ffffffffffffff;xx:1");
  EXPECT_EQ(r.trace_state->Get("vendor").value_or(""), "v");
  EXPECT_EQ(r.trace_state->members().front().key, "ot");  // updated key moves to front
}

TEST(TraceIdRatio, DropErasesAStaleThreshold) {
  auto s = MakeTraceIdRatioSampler(0.5);
  TraceState ts = TraceState::Parse("ot=th:0;rv:00000000000001");
  SpanContext parent(WithRandomness(5), GenerateSpanId(), 3, true, ts);
  auto r = Decide(*s, parent.trace_id(), parent);
  EXPECT_EQ(r.decision, SamplingDecision::kDrop);
  ASSERT_TRUE(r.trace_state);
  EXPECT_EQ(r.trace_state->Get("ot").value_or(""), "rv:00000000000001");
}

TEST(TraceIdRatio, ObservedRateMatchesRatio) {
  auto s = MakeTraceIdRatioSampler(0.1);
  int kept = 0;
  const int n = 200000;
  for (int i = 0; i < n; ++i) {
    if (Decide(*s, GenerateTraceId()).decision == SamplingDecision::kRecordAndSample) ++kept;
  }
  EXPECT_NEAR(kept / double(n), 0.1, 0.005);
}

TEST(ParentBased, DelegatesByParentKind) {
  auto s = MakeParentBasedSampler(MakeAlwaysOffSampler());
  TraceId id = GenerateTraceId();
  struct Case {
    const char* name;
    SpanContext parent;
    SamplingDecision want;
  } cases[] = {
      {"root uses root sampler", SpanContext(), SamplingDecision::kDrop},
      {"remote sampled", SpanContext(id, GenerateSpanId(), 1, true),
       SamplingDecision::kRecordAndSample},
      {"remote not sampled", SpanContext(id, GenerateSpanId(), 0, true), SamplingDecision::kDrop},
      {"local sampled", SpanContext(id, GenerateSpanId(), 1, false),
       SamplingDecision::kRecordAndSample},
      {"local not sampled", SpanContext(id, GenerateSpanId(), 0, false), SamplingDecision::kDrop},
  };
  for (const auto& c : cases) EXPECT_EQ(Decide(*s, id, c.parent).decision, c.want) << c.name;
}

TEST(ParentBased, CustomDelegates) {
  ParentBasedOptions o;
  o.remote_parent_not_sampled = MakeAlwaysOnSampler();
  o.local_parent_sampled = MakeAlwaysOffSampler();
  auto s = MakeParentBasedSampler(MakeAlwaysOnSampler(), std::move(o));
  TraceId id = GenerateTraceId();
  EXPECT_EQ(Decide(*s, id, SpanContext(id, GenerateSpanId(), 0, true)).decision,
            SamplingDecision::kRecordAndSample);
  EXPECT_EQ(Decide(*s, id, SpanContext(id, GenerateSpanId(), 1, false)).decision,
            SamplingDecision::kDrop);
  EXPECT_NE(s->Description().find("ParentBased{root:AlwaysOnSampler"), std::string::npos);
}

TEST(SamplerFromEnvironment, NamesAndArguments) {
  struct Case {
    const char* sampler;
    const char* arg;
    std::string want;
  } cases[] = {
      {nullptr, nullptr, "ParentBased{root:AlwaysOnSampler"},
      {"always_on", nullptr, "AlwaysOnSampler"},
      {"ALWAYS_OFF", nullptr, "AlwaysOffSampler"},
      {"traceidratio", "0.25", "TraceIdRatioBased{0.250000}"},
      {"traceidratio", "bogus", "TraceIdRatioBased{1.000000}"},  // logged, default 1.0
      {"traceidratio", "1.5", "TraceIdRatioBased{1.000000}"},
      {"traceidratio", nullptr, "TraceIdRatioBased{1.000000}"},
      {"parentbased_always_off", nullptr, "ParentBased{root:AlwaysOffSampler"},
      {"parentbased_traceidratio", "0.01", "ParentBased{root:TraceIdRatioBased{0.010000}"},
      {"jaeger_remote", nullptr, "ParentBased{root:AlwaysOnSampler"},  // unsupported: default
      {"nonsense", nullptr, "ParentBased{root:AlwaysOnSampler"},
  };
  for (const auto& c : cases) {
    ScopedEnv a("OTEL_TRACES_SAMPLER", c.sampler);
    ScopedEnv b("OTEL_TRACES_SAMPLER_ARG", c.arg);
    std::string d = SamplerFromEnvironment()->Description();
    EXPECT_EQ(d.substr(0, c.want.size()), c.want) << (c.sampler ? c.sampler : "(unset)");
  }
}

// A program's own settings (env::Defaults) are used for the variables the
// environment leaves unset or empty, each on its own, and parsed the same way.
TEST(SamplerFromEnvironment, DefaultsFillWhatTheEnvironmentLeavesUnset) {
  const env::Defaults defaults = {{"OTEL_TRACES_SAMPLER", "TraceIdRatio"},
                                  {"OTEL_TRACES_SAMPLER_ARG", "0.25"}};
  {
    ScopedEnv a("OTEL_TRACES_SAMPLER", nullptr);
    ScopedEnv b("OTEL_TRACES_SAMPLER_ARG", "");
    EXPECT_EQ(SamplerFromEnvironment(&defaults)->Description(), "TraceIdRatioBased{0.250000}");
    EXPECT_EQ(env::GetEnum("OTEL_TRACES_SAMPLER", &defaults).value_or(""), "traceidratio");
  }
  {
    ScopedEnv a("OTEL_TRACES_SAMPLER", "always_off");  // the environment wins
    EXPECT_EQ(SamplerFromEnvironment(&defaults)->Description(), "AlwaysOffSampler");
  }
  {
    ScopedEnv a("OTEL_TRACES_SAMPLER", nullptr);
    ScopedEnv b("OTEL_TRACES_SAMPLER_ARG", "0.5");  // per variable
    EXPECT_EQ(SamplerFromEnvironment(&defaults)->Description(), "TraceIdRatioBased{0.500000}");
    const env::Defaults adaptive = {{"OTEL_TRACES_SAMPLER", "prism_adaptive"}};
    ASSERT_TRUE(AdaptiveOptionsFromEnvironment(AdaptiveOptions::Role::kHead, &adaptive));
    EXPECT_FALSE(AdaptiveOptionsFromEnvironment(AdaptiveOptions::Role::kHead, &defaults));
  }
}

TEST(Tracer, RatioSampledRootsCarryThresholdDownstream) {
  InMemorySpanRecorder rec;
  auto provider =
      testing::RecordingProvider(rec, MakeParentBasedSampler(MakeTraceIdRatioSampler(1.0)));
  Tracer tracer = provider->GetTracer("t");
  Span root = tracer.StartSpan("root");
  EXPECT_EQ(root.context().trace_state().Get("ot").value_or(""), "th:0");
  StartSpanOptions o;
  o.parent = root.context();
  Span child = tracer.StartSpan("child", o);
  EXPECT_EQ(child.context().trace_state().Get("ot").value_or(""), "th:0");
}

TEST(Sampler, BuiltInSamplersDoNotReadAttributes) {
  EXPECT_FALSE(MakeAlwaysOnSampler()->ReadsAttributes());
  EXPECT_FALSE(MakeAlwaysOffSampler()->ReadsAttributes());
  EXPECT_FALSE(MakeTraceIdRatioSampler(0.5)->ReadsAttributes());
  EXPECT_FALSE(MakeParentBasedSampler(MakeTraceIdRatioSampler(0.5))->ReadsAttributes());

  // A custom sampler reads them unless it says otherwise, and a parentbased
  // sampler reads them when any delegate does.
  class ByAttribute final : public Sampler {
   public:
    SamplingResult ShouldSample(const SamplingParameters& p) const override {
      return {p.attributes.empty() ? SamplingDecision::kDrop : SamplingDecision::kRecordAndSample,
              {},
              std::nullopt};
    }
    std::string Description() const override { return "ByAttribute"; }
  };
  EXPECT_TRUE(ByAttribute().ReadsAttributes());
  ParentBasedOptions o;
  o.remote_parent_not_sampled = std::make_unique<ByAttribute>();
  EXPECT_TRUE(MakeParentBasedSampler(MakeAlwaysOnSampler(), std::move(o))->ReadsAttributes());

  InMemorySpanRecorder rec;
  auto eager = testing::RecordingProvider(rec, std::make_unique<ByAttribute>());
  EXPECT_TRUE(eager->GetTracer("t").SamplerReadsAttributes());
  auto lazy = testing::RecordingProvider(rec, MakeAlwaysOnSampler());
  EXPECT_FALSE(lazy->GetTracer("t").SamplerReadsAttributes());
  EXPECT_FALSE(Tracer().SamplerReadsAttributes());
}

TEST(Sampler, StartSpanBuildsAttributesOnlyWhenRead) {
  InMemorySpanRecorder rec;
  int built = 0;
  auto make = [&] {
    ++built;
    return Attributes{{"k", std::string("v")}};
  };
  // A dropped span never builds them.
  auto off = testing::RecordingProvider(rec, MakeAlwaysOffSampler());
  EXPECT_FALSE(off->GetTracer("t").StartSpan("a", StartSpanOptions{}, make).IsRecording());
  EXPECT_EQ(built, 0);
  // A recording span gets them once, after the decision.
  auto on = testing::RecordingProvider(rec, MakeAlwaysOnSampler());
  on->GetTracer("t").StartSpan("b", StartSpanOptions{}, make).End();
  EXPECT_EQ(built, 1);
  ASSERT_EQ(rec.spans().size(), 1u);
  EXPECT_EQ(std::get<std::string>(*rec.spans()[0].FindAttribute("k")), "v");
  // A sampler that reads them sees them at start, even when it drops the span.
  class SeesAttributes final : public Sampler {
   public:
    explicit SeesAttributes(bool* saw) : saw_(saw) {}
    SamplingResult ShouldSample(const SamplingParameters& p) const override {
      *saw_ = !p.attributes.empty();
      return {SamplingDecision::kDrop, {}, std::nullopt};
    }
    std::string Description() const override { return "SeesAttributes"; }

   private:
    bool* saw_;
  };
  bool saw = false;
  auto reads = testing::RecordingProvider(rec, std::make_unique<SeesAttributes>(&saw));
  reads->GetTracer("t").StartSpan("c", StartSpanOptions{}, make);
  EXPECT_TRUE(saw);
  EXPECT_EQ(built, 2);
}
}  // namespace
}  // namespace prism::tracing
