// W3C traceparent/tracestate and baggage propagation, carriers, the composite
// propagator and OTEL_PROPAGATORS. Table-driven, one row per rule of W3C
// Trace Context Level 2.

#include "prism/tracing/propagation.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <map>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "prism/tracing/carriers.h"
#include "scoped_env.h"

namespace prism::tracing {
namespace {

using testing::ScopedEnv;

constexpr char kTraceIdHex[] = "4bf92f3577b34da6a3ce929d0e0e4736";
constexpr char kSpanIdHex[] = "00f067aa0ba902b7";
const std::string kValid = std::string("00-") + kTraceIdHex + "-" + kSpanIdHex + "-01";

std::string Tp(std::string_view version, std::string_view trace_id, std::string_view span_id,
               std::string_view flags, std::string_view rest = {}) {
  std::string s;
  s.append(version).append("-").append(trace_id).append("-").append(span_id);
  s.append("-").append(flags).append(rest);
  return s;
}

SpanContext MakeContext(uint8_t flags, TraceState state = {}, bool remote = false) {
  return SpanContext(TraceId::FromHex(kTraceIdHex), SpanId::FromHex(kSpanIdHex), flags, remote,
                     std::move(state));
}

// ---- traceparent parsing ---------------------------------------------------------

struct TraceparentCase {
  std::string header;
  bool valid;
  uint8_t flags;  // when valid
  const char* rule;
};

std::vector<TraceparentCase> TraceparentCases() {
  const std::string t = kTraceIdHex;
  const std::string s = kSpanIdHex;
  return {
      // Valid version 00.
      {Tp("00", t, s, "01"), true, 0x01, "spec example, sampled"},
      {Tp("00", t, s, "00"), true, 0x00, "not sampled"},
      {Tp("00", t, s, "02"), true, 0x02, "random flag (Level 2) kept"},
      {Tp("00", t, s, "03"), true, 0x03, "sampled and random"},
      {Tp("00", t, s, "09"), true, 0x09, "unknown flag bits kept on extract"},
      {Tp("00", t, s, "ff"), true, 0xff, "all flag bits"},
      {Tp("00", "12345678901234567890123456789012", "1234567890123456", "01"), true, 0x01,
       "W3C suite ids"},
      {Tp("00", "00000000000000000000000000000001", "0000000000000001", "00"), true, 0x00,
       "ids that are almost zero"},
      // Future versions: the first 55 characters are parsed, more fields may follow.
      {Tp("01", t, s, "01"), true, 0x01, "version 01, 55 characters"},
      {Tp("cc", t, s, "01"), true, 0x01, "version cc, 55 characters"},
      {Tp("cc", t, s, "01", "-what-the-future-will-be-like"), true, 0x01,
       "higher version with extra fields"},
      {Tp("cc", t, s, "01", "-"), true, 0x01, "higher version, empty extra field"},
      {Tp("fe", t, s, "0b", "-x"), true, 0x03, "higher version: only known flag bits read"},
      {Tp("cc", t, s, "01", ".what-the-future-will-be-like"), false, 0,
       "higher version, extra data not after a dash"},
      {Tp("cc", t, s, "01", "x"), false, 0, "higher version, 56th character not a dash"},
      // Version.
      {Tp("ff", t, s, "01"), false, 0, "version ff is invalid"},
      {Tp("ff", t, s, "01", "-x"), false, 0, "version ff with extra fields"},
      {Tp("0A", t, s, "01"), false, 0, "upper-case version"},
      {Tp(".0", t, s, "01"), false, 0, "illegal character in version"},
      {Tp("0.", t, s, "01"), false, 0, "illegal character in version"},
      {Tp("000", t, s, "01"), false, 0, "version of 3 digits"},
      {Tp("0000", t, s, "01"), false, 0, "version of 4 digits"},
      {Tp("0", t, s, "01"), false, 0, "version of 1 digit"},
      // Version 00 is exactly 55 characters.
      {Tp("00", t, s, "01", "."), false, 0, "version 00 with a trailing character"},
      {Tp("00", t, s, "01", "-what-the-future-will-be-like"), false, 0,
       "version 00 with extra fields"},
      {Tp("00", t, s, "01", " "), false, 0, "version 00 with a trailing space"},
      // trace-id.
      {Tp("00", "00000000000000000000000000000000", s, "01"), false, 0, "all-zero trace-id"},
      {Tp("00", "4BF92F3577B34DA6A3CE929D0E0E4736", s, "01"), false, 0, "upper-case trace-id"},
      {Tp("00", "4bf92f3577b34da6a3ce929d0e0e473A", s, "01"), false, 0, "one upper-case digit"},
      {Tp("00", ".2345678901234567890123456789012", s, "01"), false, 0, "illegal character"},
      {Tp("00", "1234567890123456789012345678901.", s, "01"), false, 0, "illegal character"},
      {Tp("00", "g2345678901234567890123456789012", s, "01"), false, 0, "non-hex letter"},
      {Tp("00", "123456789012345678901234567890123", s, "01"), false, 0, "trace-id of 33"},
      {Tp("00", "1234567890123456789012345678901", s, "01"), false, 0, "trace-id of 31"},
      // parent-id.
      {Tp("00", t, "0000000000000000", "01"), false, 0, "all-zero parent-id"},
      {Tp("00", t, "00F067AA0BA902B7", "01"), false, 0, "upper-case parent-id"},
      {Tp("00", t, ".234567890123456", "01"), false, 0, "illegal character"},
      {Tp("00", t, "123456789012345.", "01"), false, 0, "illegal character"},
      {Tp("00", t, "12345678901234567", "01"), false, 0, "parent-id of 17"},
      {Tp("00", t, "123456789012345", "01"), false, 0, "parent-id of 15"},
      // trace-flags.
      {Tp("00", t, s, ".0"), false, 0, "illegal character in flags"},
      {Tp("00", t, s, "0."), false, 0, "illegal character in flags"},
      {Tp("00", t, s, "0A"), false, 0, "upper-case flags"},
      {Tp("00", t, s, "001"), false, 0, "flags of 3 digits"},
      {Tp("00", t, s, "1"), false, 0, "flags of 1 digit"},
      // Separators and length.
      {"00_" + t + "-" + s + "-01", false, 0, "bad separator after version"},
      {"00-" + t + "_" + s + "-01", false, 0, "bad separator after trace-id"},
      {"00-" + t + "-" + s + "_01", false, 0, "bad separator after parent-id"},
      {"00" + t + "-" + s + "-01---", false, 0, "missing separator"},
      {"", false, 0, "empty"},
      {"00", false, 0, "version only"},
      {kValid.substr(0, 54), false, 0, "54 characters"},
      {" " + kValid, false, 0, "leading OWS is not part of the value"},
      {kValid + "," + kValid, false, 0, "two traceparent fields combined"},
  };
}

TEST(W3CTraceparent, ParseTable) {
  for (const auto& c : TraceparentCases()) {
    std::optional<SpanContext> sc = w3c::ParseTraceparent(c.header);
    ASSERT_EQ(sc.has_value(), c.valid) << c.rule << ": \"" << c.header << "\"";
    if (!sc) continue;
    EXPECT_TRUE(sc->IsValid()) << c.rule;
    EXPECT_TRUE(sc->IsRemote()) << c.rule;
    EXPECT_EQ(sc->flags(), c.flags) << c.rule;
    EXPECT_EQ(sc->trace_id().ToHex(), c.header.substr(3, 32)) << c.rule;
    EXPECT_EQ(sc->span_id().ToHex(), c.header.substr(36, 16)) << c.rule;
    EXPECT_TRUE(sc->trace_state().empty());
  }
}

TEST(W3CTraceparent, ParseWithTracestate) {
  struct Case {
    std::string traceparent;
    std::string tracestate;
    bool valid;
    std::string state;
    const char* rule;
  } cases[] = {
      {kValid, "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE", true,
       "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE", "valid pair"},
      {kValid, "", true, "", "no tracestate"},
      {kValid, "foo=1,BAR=2", true, "", "invalid tracestate: dropped whole, traceparent kept"},
      {kValid, "@foo=1,bar=2", true, "", "one invalid member drops the header"},
      // The editor's-draft key grammar: '@' anywhere after the first
      // character, up to 256 characters; a repeated key keeps the header.
      {kValid, "foo@=1,bar=2", true, "foo@=1,bar=2", "'@' last in a key"},
      {kValid, "foo=1," + std::string(242, 't') + "@v=1", true,
       "foo=1," + std::string(242, 't') + "@v=1", "242 x 't' + \"@v\": a 245-character key"},
      {kValid, "foo=1,foo=1", true, "foo=1", "duplicate key: the first is kept"},
      {kValid, "foo=1,foo=2", true, "foo=1", "duplicate key, other value: the first is kept"},
      {"ff" + kValid.substr(2), "foo=1", false, "", "invalid traceparent: no tracestate"},
  };
  for (const auto& c : cases) {
    std::optional<SpanContext> sc = w3c::ParseTraceparent(c.traceparent, c.tracestate);
    ASSERT_EQ(sc.has_value(), c.valid) << c.rule;
    if (sc) {
      EXPECT_EQ(sc->trace_state().ToHeader(), c.state) << c.rule;
    }
  }
}

// ---- traceparent formatting ------------------------------------------------------

TEST(W3CTraceparent, FormatTable) {
  struct Case {
    uint8_t flags;
    const char* written;
    const char* rule;
  } cases[] = {
      {0x00, "00", "not sampled"},
      {0x01, "01", "sampled"},
      {0x02, "02", "random"},
      {0x03, "03", "sampled and random"},
      {0x09, "01", "reserved bits are written as zero"},
      {0xff, "03", "reserved bits are written as zero"},
      {0xfc, "00", "only reserved bits"},
  };
  for (const auto& c : cases) {
    SpanContext sc = MakeContext(c.flags);
    std::string want = Tp("00", kTraceIdHex, kSpanIdHex, c.written);
    EXPECT_EQ(w3c::FormatTraceparent(sc), want) << c.rule;
    char buf[55];
    w3c::FormatTraceparent(sc, buf);
    EXPECT_EQ(std::string(buf, sizeof(buf)), want) << c.rule;
  }
}

TEST(W3CTraceparent, RoundTrip) {
  for (uint8_t flags : {0x00, 0x01, 0x02, 0x03}) {
    SpanContext sc = MakeContext(flags, {}, /*remote=*/true);
    std::optional<SpanContext> back = w3c::ParseTraceparent(w3c::FormatTraceparent(sc));
    ASSERT_TRUE(back.has_value());
    EXPECT_EQ(*back, sc);
  }
  for (int i = 0; i < 100; ++i) {
    SpanContext sc(GenerateTraceId(), GenerateSpanId(), static_cast<uint8_t>(i & 3), true);
    std::optional<SpanContext> back = w3c::ParseTraceparent(w3c::FormatTraceparent(sc));
    ASSERT_TRUE(back.has_value());
    EXPECT_EQ(*back, sc);
  }
}

// ---- Carriers -----------------------------------------------------------------------

TEST(W3CCarriers, EqualsIgnoreCase) {
  struct Case {
    const char* a;
    const char* b;
    bool equal;
  } cases[] = {
      {"traceparent", "traceparent", true},
      {"traceparent", "TraceParent", true},
      {"TRACEPARENT", "traceparent", true},
      {"TrAcEpArEnT", "tRaCePaRe nt", false},
      {"traceparent", "trace-parent", false},
      {"traceparent", "traceparen", false},
      {"", "", true},
      {"a", "", false},
      {"@", "`", false},
      {"[", "{", false},
  };
  for (const auto& c : cases) {
    EXPECT_EQ(internal::EqualsIgnoreCase(c.a, c.b), c.equal) << c.a << " vs " << c.b;
  }
}

TEST(W3CCarriers, MapCarrier) {
  std::map<std::string, std::string> m{{"traceparent", kValid}};
  MapCarrier carrier(m);
  EXPECT_EQ(carrier.Get("traceparent"), kValid);
  EXPECT_FALSE(carrier.Get("TraceParent").has_value()) << "map keys are exact";
  EXPECT_FALSE(carrier.Get("tracestate").has_value());
  carrier.Set("tracestate", "a=1");
  carrier.Set("tracestate", "b=2");
  EXPECT_EQ(m.at("tracestate"), "b=2");

  std::unordered_map<std::string, std::string> u;
  MapCarrier ucarrier(u);
  ucarrier.Set("baggage", "k=v");
  EXPECT_EQ(ucarrier.Get("baggage"), "k=v");
}

TEST(W3CCarriers, HeaderCarrierMultimap) {
  std::multimap<std::string, std::string> h{
      {"tracestate", "foo=1,bar=2"},
      {"Content-Type", "application/json"},
      {"tracestate", "rojo=1"},
      {"tracestate", "baz=3"},
  };
  HeaderCarrier carrier(h);
  // Repeated fields are combined with ',' in field order.
  EXPECT_EQ(carrier.Get("tracestate"), "foo=1,bar=2,rojo=1,baz=3");
  EXPECT_EQ(carrier.Get("TraceState"), "foo=1,bar=2,rojo=1,baz=3");
  EXPECT_EQ(carrier.Get("content-type"), "application/json");
  EXPECT_FALSE(carrier.Get("traceparent").has_value());

  carrier.Set("tracestate", "x=1");
  EXPECT_EQ(h.size(), 2u) << "Set replaces every field of that name";
  EXPECT_EQ(carrier.Get("TRACESTATE"), "x=1");

  // Names match in any case (std::multimap orders them case-sensitively, so
  // only the set of values is checked here).
  std::multimap<std::string, std::string> mixed{{"TraceParent", kValid}, {"TRACESTATE", "a=1"}};
  HeaderCarrier mixed_carrier(mixed);
  EXPECT_EQ(mixed_carrier.Get("traceparent"), kValid);
  EXPECT_EQ(mixed_carrier.Get("tracestate"), "a=1");
  mixed_carrier.Set("traceparent", "x");
  EXPECT_EQ(mixed.count("TraceParent"), 0u);
  EXPECT_EQ(mixed.count("traceparent"), 1u);
}

// ---- The trace-context propagator ---------------------------------------------------

Context ExtractFrom(const TextMapPropagator& p, std::multimap<std::string, std::string> headers,
                    const Context& base = Context()) {
  HeaderCarrier carrier(headers);
  return p.Extract(carrier, base);
}

TEST(W3CTraceContextPropagator, ExtractTable) {
  auto p = MakeW3CTraceContextPropagator();
  struct Case {
    std::multimap<std::string, std::string> headers;
    bool valid;
    std::string tracestate;
    const char* rule;
  } cases[] = {
      {{{"traceparent", kValid}}, true, "", "traceparent only"},
      {{{"TraceParent", kValid}}, true, "", "header name in mixed case"},
      {{{"TRACEPARENT", kValid}}, true, "", "header name in upper case"},
      {{{"trace-parent", kValid}}, false, "", "wrong header name"},
      {{{"traceparent", " " + kValid}}, true, "", "leading OWS"},
      {{{"traceparent", "\t " + kValid + " \t"}}, true, "", "OWS both sides"},
      {{{"traceparent", kValid}, {"traceparent", kValid}},
       false,
       "",
       "duplicated traceparent fields"},
      {{{"traceparent", kValid}, {"tracestate", "foo=1,bar=2"}},
       true,
       "foo=1,bar=2",
       "with tracestate"},
      {{{"traceparent", kValid}, {"TrAcEsTaTe", "foo=1"}}, true, "foo=1", "tracestate casing"},
      {{{"traceparent", kValid}, {"trace-state", "foo=1"}}, true, "", "wrong tracestate name"},
      {{{"traceparent", kValid}, {"tracestate", "foo=1"}, {"tracestate", "bar=2"}},
       true,
       "foo=1,bar=2",
       "multiple tracestate fields combined in order"},
      {{{"traceparent", kValid}, {"tracestate", "foo=1"}, {"tracestate", ""}},
       true,
       "foo=1",
       "an empty tracestate field"},
      {{{"traceparent", kValid}, {"tracestate", ""}}, true, "", "empty tracestate"},
      {{{"traceparent", kValid}, {"tracestate", "foo=1"}, {"tracestate", "foo=2"}},
       true,
       "foo=1",
       "duplicate key across fields: the first is kept"},
      {{{"traceparent", kValid}, {"tracestate", "foo=1,foo=1"}},
       true,
       "foo=1",
       "duplicate key in one field: the first is kept"},
      {{{"traceparent", kValid}, {"tracestate", "foo@=1,bar=2"}},
       true,
       "foo@=1,bar=2",
       "'@' last in a key"},
      {{{"traceparent", kValid}, {"tracestate", std::string(242, 't') + "@v=1,bar=2"}},
       true,
       std::string(242, 't') + "@v=1,bar=2",
       "a 245-character key with '@'"},
      {{{"traceparent", kValid}, {"tracestate", "foo=1,BAR=2"}},
       true,
       "",
       "invalid member: tracestate dropped, traceparent kept"},
      {{{"tracestate", "foo=1"}}, false, "", "tracestate without traceparent"},
      {{{"traceparent", "ff" + kValid.substr(2)}, {"tracestate", "foo=1"}},
       false,
       "",
       "invalid traceparent: tracestate ignored"},
      {{}, false, "", "no headers"},
  };
  for (const auto& c : cases) {
    Context ctx = ExtractFrom(*p, c.headers);
    const SpanContext& sc = ctx.span_context();
    ASSERT_EQ(sc.IsValid(), c.valid) << c.rule;
    if (!c.valid) continue;
    EXPECT_TRUE(sc.IsRemote()) << c.rule;
    EXPECT_EQ(sc.trace_id().ToHex(), kTraceIdHex) << c.rule;
    EXPECT_EQ(sc.span_id().ToHex(), kSpanIdHex) << c.rule;
    EXPECT_EQ(sc.flags(), 0x01) << c.rule;
    EXPECT_EQ(sc.trace_state().ToHeader(), c.tracestate) << c.rule;
  }
}

TEST(W3CTraceContextPropagator, InvalidInputReturnsBaseUnchanged) {
  auto p = MakeW3CTraceContextPropagator();
  const SpanContext local(GenerateTraceId(), GenerateSpanId(), 0x01, false,
                          TraceState::Parse("me=1"));
  const Context base(local, Baggage().Set("k", "v"));
  for (const auto& c : TraceparentCases()) {
    // Extract trims OWS, so the OWS rows are valid there.
    if (c.valid || c.header.starts_with(' ') || c.header.ends_with(' ')) continue;
    Context ctx = ExtractFrom(*p, {{"traceparent", c.header}, {"tracestate", "foo=1"}}, base);
    EXPECT_EQ(ctx.span_context(), local) << c.rule;
    EXPECT_EQ(ctx.baggage(), base.baggage()) << c.rule;
  }
  // A valid traceparent replaces the span context and keeps the baggage.
  Context ctx = ExtractFrom(*p, {{"traceparent", kValid}}, base);
  EXPECT_EQ(ctx.span_context().trace_id().ToHex(), kTraceIdHex);
  EXPECT_EQ(ctx.baggage(), base.baggage());
}

TEST(W3CTraceContextPropagator, Inject) {
  auto p = MakeW3CTraceContextPropagator();
  struct Case {
    SpanContext sc;
    std::optional<std::string> traceparent;
    std::optional<std::string> tracestate;
    const char* rule;
  } cases[] = {
      {MakeContext(0x01), kValid, std::nullopt, "sampled, no tracestate"},
      {MakeContext(0x03, TraceState::Parse("ot=th:0,rojo=1")),
       Tp("00", kTraceIdHex, kSpanIdHex, "03"), "ot=th:0,rojo=1", "random flag and tracestate"},
      {MakeContext(0xff), Tp("00", kTraceIdHex, kSpanIdHex, "03"), std::nullopt,
       "reserved bits cleared"},
      {SpanContext(), std::nullopt, std::nullopt, "invalid context: nothing written"},
      {SpanContext(TraceId::FromHex(kTraceIdHex), SpanId(), 1, false), std::nullopt, std::nullopt,
       "zero span id: nothing written"},
  };
  for (const auto& c : cases) {
    std::map<std::string, std::string> m;
    MapCarrier carrier(m);
    p->Inject(Context(c.sc), carrier);
    auto get = [&m](const char* k) -> std::optional<std::string> {
      auto it = m.find(k);
      if (it == m.end()) return std::nullopt;
      return it->second;
    };
    EXPECT_EQ(get("traceparent"), c.traceparent) << c.rule;
    EXPECT_EQ(get("tracestate"), c.tracestate) << c.rule;
  }
}

TEST(W3CTraceContextPropagator, InjectReplacesExistingHeaders) {
  auto p = MakeW3CTraceContextPropagator();
  std::multimap<std::string, std::string> h{{"TraceParent", "garbage"}, {"traceparent", "x"}};
  HeaderCarrier carrier(h);
  p->Inject(Context(MakeContext(0x01)), carrier);
  ASSERT_EQ(h.size(), 1u);
  EXPECT_EQ(h.begin()->first, "traceparent");
  EXPECT_EQ(h.begin()->second, kValid);
}

TEST(W3CTraceContextPropagator, InjectExtractRoundTrip) {
  auto p = MakeW3CTraceContextPropagator();
  SpanContext sc = MakeContext(0x03, TraceState::Parse("a=1,b=2"), /*remote=*/true);
  std::map<std::string, std::string> m;
  MapCarrier carrier(m);
  p->Inject(Context(sc), carrier);
  EXPECT_EQ(p->Extract(carrier, Context()).span_context(), sc);
}

TEST(W3CTraceContextPropagator, Fields) {
  auto p = MakeW3CTraceContextPropagator();
  EXPECT_EQ(p->Fields(), (std::vector<std::string>{"traceparent", "tracestate"}));
}

// ---- The baggage propagator ----------------------------------------------------------

TEST(W3CBaggagePropagator, InjectExtract) {
  auto p = MakeW3CBaggagePropagator();
  EXPECT_EQ(p->Fields(), (std::vector<std::string>{"baggage"}));

  std::map<std::string, std::string> m;
  MapCarrier carrier(m);
  p->Inject(Context(), carrier);
  EXPECT_TRUE(m.empty()) << "empty baggage: no header";

  Baggage b = Baggage().Set("userId", "alice").Set("serverNode", "DF 28", "p");
  p->Inject(Context(SpanContext(), b), carrier);
  EXPECT_EQ(m.at("baggage"), "userId=alice,serverNode=DF%2028;p");
  EXPECT_EQ(p->Extract(carrier, Context()).baggage(), b);
}

TEST(W3CBaggagePropagator, ExtractTable) {
  auto p = MakeW3CBaggagePropagator();
  const Context base(MakeContext(0x01), Baggage().Set("old", "1"));
  struct Case {
    std::multimap<std::string, std::string> headers;
    std::string expected;  // FormatBaggage of the result
    const char* rule;
  } cases[] = {
      {{}, "old=1", "no header: base kept"},
      {{{"baggage", "k=v"}}, "k=v", "header replaces the base baggage"},
      {{{"Baggage", "k=v"}}, "k=v", "header name in any case"},
      {{{"baggage", "a=1"}, {"baggage", "b=2"}}, "a=1,b=2", "multiple fields combined"},
      {{{"baggage", "bad key=1"}}, "old=1", "nothing valid: base kept"},
  };
  for (const auto& c : cases) {
    Context ctx = ExtractFrom(*p, c.headers, base);
    EXPECT_EQ(w3c::FormatBaggage(ctx.baggage()), c.expected) << c.rule;
    EXPECT_EQ(ctx.span_context(), base.span_context()) << c.rule;
  }
}

// ---- Composite ------------------------------------------------------------------------

TEST(W3CCompositePropagator, InjectExtractFields) {
  std::vector<std::unique_ptr<TextMapPropagator>> list;
  list.push_back(MakeW3CTraceContextPropagator());
  list.push_back(MakeW3CBaggagePropagator());
  list.push_back(MakeW3CTraceContextPropagator());  // a duplicate field set
  list.push_back(nullptr);                          // ignored
  auto p = MakeCompositePropagator(std::move(list));
  EXPECT_EQ(p->Fields(), (std::vector<std::string>{"traceparent", "tracestate", "baggage"}));

  Context ctx(MakeContext(0x01, TraceState::Parse("a=1")), Baggage().Set("k", "v"));
  std::map<std::string, std::string> m;
  MapCarrier carrier(m);
  p->Inject(ctx, carrier);
  EXPECT_EQ(m.at("traceparent"), kValid);
  EXPECT_EQ(m.at("tracestate"), "a=1");
  EXPECT_EQ(m.at("baggage"), "k=v");

  Context back = p->Extract(carrier, Context());
  EXPECT_EQ(back.span_context().trace_id(), ctx.span_context().trace_id());
  EXPECT_TRUE(back.span_context().IsRemote());
  EXPECT_EQ(back.span_context().trace_state(), ctx.span_context().trace_state());
  EXPECT_EQ(back.baggage(), ctx.baggage());

  auto empty = MakeCompositePropagator({});
  EXPECT_TRUE(empty->Fields().empty());
  std::map<std::string, std::string> none;
  MapCarrier none_carrier(none);
  empty->Inject(ctx, none_carrier);
  EXPECT_TRUE(none.empty());
  EXPECT_FALSE(empty->Extract(carrier, Context()).span_context().IsValid());
}

// ---- OTEL_PROPAGATORS -----------------------------------------------------------------

TEST(W3CPropagatorFromEnvironment, Table) {
  const std::vector<std::string> kBoth{"traceparent", "tracestate", "baggage"};
  const std::vector<std::string> kTc{"traceparent", "tracestate"};
  const std::vector<std::string> kBg{"baggage"};
  struct Case {
    const char* value;  // nullptr: unset
    std::vector<std::string> fields;
    const char* rule;
  } cases[] = {
      {nullptr, kBoth, "default: tracecontext,baggage"},
      {"", kBoth, "empty is unset"},
      {"tracecontext,baggage", kBoth, "both"},
      {"baggage,tracecontext", {"baggage", "traceparent", "tracestate"}, "order kept"},
      {"tracecontext", kTc, "tracecontext only"},
      {"baggage", kBg, "baggage only"},
      {" TraceContext , BAGGAGE ", kBoth, "case-insensitive, trimmed"},
      {"tracecontext,tracecontext,baggage,baggage", kBoth, "duplicates ignored"},
      {"tracecontext,,baggage", kBoth, "empty names skipped"},
      {"b3,tracecontext", kTc, "b3 is not supported: skipped"},
      {"jaeger,b3multi,xray,ottrace,baggage", kBg, "unsupported ones skipped"},
      {"foo,baggage", kBg, "unknown name skipped"},
      {"foo", {}, "nothing known: no propagator"},
      {"none", {}, "none"},
      {"NONE", {}, "none, any case"},
      {"none,tracecontext", {}, "none wins"},
  };
  for (const auto& c : cases) {
    ScopedEnv env("OTEL_PROPAGATORS", c.value);
    auto p = PropagatorFromEnvironment();
    ASSERT_NE(p, nullptr) << c.rule;
    EXPECT_EQ(p->Fields(), c.fields) << c.rule;
  }
}

TEST(W3CPropagatorFromEnvironment, DefaultPropagates) {
  ScopedEnv env("OTEL_PROPAGATORS", nullptr);
  auto p = PropagatorFromEnvironment();
  std::map<std::string, std::string> m;
  MapCarrier carrier(m);
  p->Inject(Context(MakeContext(0x01), Baggage().Set("k", "v")), carrier);
  EXPECT_EQ(m.at("traceparent"), kValid);
  EXPECT_EQ(m.at("baggage"), "k=v");
}

}  // namespace
}  // namespace prism::tracing
