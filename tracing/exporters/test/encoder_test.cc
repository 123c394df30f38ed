#include <gtest/gtest.h>

#include <charconv>
#include <cmath>
#include <cstring>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>
#include <random>

#include "exporters_test_util.h"
#include "prism/tracing/exporters/otlp_encoder.h"

namespace prism::tracing {
namespace {

using testing::CaptureProcessor;
using testing::MakeCapturingProvider;

// A minimal protobuf reader for checking the encoder's output structure.
struct Field {
  uint32_t wire = 0;
  uint64_t num = 0;
  std::string_view bytes;
};
using Message = std::multimap<uint32_t, Field>;

bool ReadVarint(std::string_view& in, uint64_t& v) {
  v = 0;
  for (int shift = 0; shift < 64 && !in.empty(); shift += 7) {
    auto b = static_cast<uint8_t>(in[0]);
    in.remove_prefix(1);
    v |= uint64_t{b & 0x7fu} << shift;
    if (!(b & 0x80)) return true;
  }
  return false;
}

Message Parse(std::string_view in) {
  Message m;
  while (!in.empty()) {
    uint64_t tag;
    EXPECT_TRUE(ReadVarint(in, tag));
    Field f;
    f.wire = static_cast<uint32_t>(tag & 7);
    switch (f.wire) {
      case 0:
        EXPECT_TRUE(ReadVarint(in, f.num));
        break;
      case 1:
        EXPECT_GE(in.size(), 8u);
        std::memcpy(&f.num, in.data(), 8);
        in.remove_prefix(8);
        break;
      case 5: {
        uint32_t v;
        EXPECT_GE(in.size(), 4u);
        std::memcpy(&v, in.data(), 4);
        f.num = v;
        in.remove_prefix(4);
        break;
      }
      case 2: {
        uint64_t n;
        EXPECT_TRUE(ReadVarint(in, n));
        EXPECT_LE(n, in.size());
        f.bytes = in.substr(0, n);
        in.remove_prefix(n);
        break;
      }
      default:
        ADD_FAILURE() << "bad wire type " << f.wire;
        return m;
    }
    m.emplace(static_cast<uint32_t>(tag >> 3), f);
  }
  return m;
}

std::vector<Field> All(const Message& m, uint32_t field) {
  std::vector<Field> out;
  auto [a, b] = m.equal_range(field);
  for (auto it = a; it != b; ++it) out.push_back(it->second);
  return out;
}

class EncoderTest : public ::testing::Test {
 protected:
  std::shared_ptr<CaptureProcessor::Store> store_ = std::make_shared<CaptureProcessor::Store>();
};

TEST_F(EncoderTest, ProtobufStructureAndLargeSpans) {
  auto provider = MakeCapturingProvider(store_);
  auto tracer = provider->GetTracer("scope-a", "1.0");
  {
    auto root = tracer.StartSpan("root", SpanKind::kServer);
    root.SetAttribute("big", std::string(20000, 'x'));  // needs a 3-byte length
    root.SetAttribute("i", int64_t{-5});
    root.SetAttribute("d", 2.5);
    root.SetAttribute("b", true);
    root.SetAttribute("arr", std::vector<int64_t>{1, 2, 3});
    root.SetStatus(StatusCode::kError, "boom");
    root.End();
  }
  ASSERT_EQ(store_->spans.size(), 1u);
  std::string out;
  otlp::EncodeProtobuf(store_->spans, out);
  Message req = Parse(out);
  auto rs = All(req, 1);
  ASSERT_EQ(rs.size(), 1u);
  Message rsm = Parse(rs[0].bytes);
  Message resource = Parse(All(rsm, 1).at(0).bytes);
  EXPECT_FALSE(All(resource, 1).empty());
  EXPECT_EQ(All(rsm, 3).at(0).bytes, "https://opentelemetry.io/schemas/1.26.0");
  Message ss = Parse(All(rsm, 2).at(0).bytes);
  Message scope = Parse(All(ss, 1).at(0).bytes);
  EXPECT_EQ(All(scope, 1).at(0).bytes, "scope-a");
  EXPECT_EQ(All(scope, 2).at(0).bytes, "1.0");
  Message span = Parse(All(ss, 2).at(0).bytes);
  const SpanData& sd = *store_->spans[0];
  EXPECT_EQ(
      All(span, 1).at(0).bytes,
      std::string_view(reinterpret_cast<const char*>(sd.context.trace_id().bytes().data()), 16));
  EXPECT_EQ(All(span, 5).at(0).bytes, "root");
  EXPECT_EQ(All(span, 6).at(0).num, 2u);
  EXPECT_EQ(All(span, 7).at(0).num, sd.start_unix_nano);
  EXPECT_EQ(All(span, 8).at(0).num, sd.end_unix_nano);
  EXPECT_EQ(All(span, 16).at(0).num, uint64_t{sd.context.flags()} | 0x100u);
  EXPECT_TRUE(All(span, 4).empty()) << "root has no parent";
  auto attrs = All(span, 9);
  ASSERT_EQ(attrs.size(), 5u);
  Message big = Parse(attrs[0].bytes);
  EXPECT_EQ(All(big, 1).at(0).bytes, "big");
  EXPECT_EQ(All(Parse(All(big, 2).at(0).bytes), 1).at(0).bytes.size(), 20000u);
  Message iv = Parse(All(Parse(attrs[1].bytes), 2).at(0).bytes);
  EXPECT_EQ(static_cast<int64_t>(All(iv, 3).at(0).num), -5);
  Message dv = Parse(All(Parse(attrs[2].bytes), 2).at(0).bytes);
  double d;
  uint64_t bits = All(dv, 4).at(0).num;
  std::memcpy(&d, &bits, 8);
  EXPECT_EQ(d, 2.5);
  Message arr = Parse(All(Parse(All(Parse(attrs[4].bytes), 2).at(0).bytes), 5).at(0).bytes);
  EXPECT_EQ(All(arr, 1).size(), 3u);
  Message status = Parse(All(span, 15).at(0).bytes);
  EXPECT_EQ(All(status, 2).at(0).bytes, "boom");
  EXPECT_EQ(All(status, 3).at(0).num, 2u);
}

TEST_F(EncoderTest, GroupsByResourceAndScope) {
  auto store2 = std::make_shared<CaptureProcessor::Store>();
  auto p1 = MakeCapturingProvider(store_, {{"service.name", std::string("one")}});
  auto p2 = MakeCapturingProvider(store2, {{"service.name", std::string("two")}});
  auto a = p1->GetTracer("a");
  auto b = p1->GetTracer("b");
  auto c = p2->GetTracer("c");
  a.StartSpan("a1").End();
  b.StartSpan("b1").End();
  a.StartSpan("a2").End();
  a.StartSpan("a3").End();  // the same origin as the span before it
  c.StartSpan("c1").End();
  for (auto& s : store2->spans) store_->spans.push_back(std::move(s));
  // Records without an origin (made by hand), one after another.
  for (const char* name : {"bare1", "bare2"}) {
    auto bare = std::make_unique<SpanData>();
    bare->name = name;
    store_->spans.push_back(std::move(bare));
  }
  b.StartSpan("b2").End();
  std::string out;
  otlp::EncodeJson(store_->spans, out);
  auto j = nlohmann::json::parse(out);
  ASSERT_EQ(j["resourceSpans"].size(), 3u);
  auto& r1 = j["resourceSpans"][0];
  ASSERT_EQ(r1["scopeSpans"].size(), 2u);
  EXPECT_EQ(r1["scopeSpans"][0]["scope"]["name"], "a");
  ASSERT_EQ(r1["scopeSpans"][0]["spans"].size(), 3u);
  EXPECT_EQ(r1["scopeSpans"][0]["spans"][2]["name"], "a3");
  EXPECT_EQ(r1["scopeSpans"][1]["scope"]["name"], "b");
  ASSERT_EQ(r1["scopeSpans"][1]["spans"].size(), 2u);
  EXPECT_EQ(r1["scopeSpans"][1]["spans"][1]["name"], "b2");
  EXPECT_EQ(j["resourceSpans"][1]["scopeSpans"][0]["spans"][0]["name"], "c1");
  auto& bare = j["resourceSpans"][2]["scopeSpans"][0]["spans"];
  ASSERT_EQ(bare.size(), 2u);
  EXPECT_EQ(bare[1]["name"], "bare2");
  store_->spans.resize(store_->spans.size() - 3);  // the protobuf check below: two resources

  std::string pb;
  otlp::EncodeProtobuf(store_->spans, pb);
  EXPECT_EQ(All(Parse(pb), 1).size(), 2u);
}

TEST_F(EncoderTest, JsonFollowsOtlpJsonRules) {
  auto provider = MakeCapturingProvider(store_);
  auto tracer = provider->GetTracer("s");
  {
    auto root = tracer.StartSpan("root", SpanKind::kClient);
    StartSpanOptions opts;
    opts.parent = root.context();
    auto child = tracer.StartSpan("child \"quoted\"\n", std::move(opts));
    child.SetAttribute("n", int64_t{1} << 60);
    child.SetAttribute("bad\xff", std::string("v\x01"));
    // Literal keys are copied unescaped only when AttributeKey found them
    // plain at compile time: these are not.
    child.SetAttribute("we\"ird\\key", true);
    child.SetAttribute("tab\tkey", true);
    child.AddEvent("ev", {{"k", std::string("v")}});
    child.End();
  }
  std::string out;
  otlp::EncodeJson(store_->spans, out);
  auto j = nlohmann::json::parse(out);  // valid JSON, valid UTF-8
  auto& span = j["resourceSpans"][0]["scopeSpans"][0]["spans"][0];
  EXPECT_EQ(span["name"], "child \"quoted\"\n");
  EXPECT_TRUE(span["kind"].is_number_integer());
  EXPECT_TRUE(span["startTimeUnixNano"].is_string());
  EXPECT_EQ(span["traceId"].get<std::string>().size(), 32u);
  EXPECT_EQ(span["spanId"].get<std::string>().size(), 16u);
  EXPECT_EQ(span["parentSpanId"], store_->spans[1]->context.span_id().ToHex());
  EXPECT_EQ(span["attributes"][0]["value"]["intValue"], std::to_string(int64_t{1} << 60));
  EXPECT_EQ(span["attributes"][1]["key"], "bad\xef\xbf\xbd");
  EXPECT_EQ(span["attributes"][2]["key"], "we\"ird\\key");
  EXPECT_EQ(span["attributes"][3]["key"], "tab\tkey");
  EXPECT_EQ(span["events"][0]["timeUnixNano"].is_string(), true);
  EXPECT_EQ(j["resourceSpans"][0]["scopeSpans"][0]["spans"][1]["kind"], 3);
}

// The OTLP/JSON form of a string, written independently of the encoder:
// UTF-8 decoded per RFC 3629, each byte that does not start a valid sequence
// replaced by U+FFFD; then '"', '\\' and controls escaped (short forms for
// \b \f \n \r \t, lower-case \u00xx for the others), nothing else.
std::string RefJsonString(std::string_view in) {
  std::string out = "\"";
  size_t i = 0;
  while (i < in.size()) {
    auto c = static_cast<unsigned char>(in[i]);
    if (c < 0x80) {
      switch (c) {
        case '"':
          out += "\\\"";
          break;
        case '\\':
          out += "\\\\";
          break;
        case '\b':
          out += "\\b";
          break;
        case '\f':
          out += "\\f";
          break;
        case '\n':
          out += "\\n";
          break;
        case '\r':
          out += "\\r";
          break;
        case '\t':
          out += "\\t";
          break;
        default:
          if (c < 0x20) {
            char buf[8];
            std::snprintf(buf, sizeof buf, "\\u%04x", c);
            out += buf;
          } else {
            out += static_cast<char>(c);
          }
      }
      ++i;
      continue;
    }
    size_t len = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : c >= 0xc0 ? 2 : 0;
    uint32_t cp = len == 2 ? c & 0x1fu : len == 3 ? c & 0x0fu : c & 0x07u;
    bool ok = len != 0 && c < 0xf8 && i + len <= in.size();
    for (size_t k = 1; ok && k < len; ++k) {
      auto d = static_cast<unsigned char>(in[i + k]);
      ok = (d & 0xc0) == 0x80;
      cp = cp << 6 | (d & 0x3fu);
    }
    static constexpr uint32_t kMin[] = {0, 0, 0x80, 0x800, 0x10000};
    ok = ok && cp >= kMin[len] && cp <= 0x10ffff && !(cp >= 0xd800 && cp <= 0xdfff);
    if (ok) {
      out.append(in.substr(i, len));
      i += len;
    } else {
      out += "\xef\xbf\xbd";
      ++i;
    }
  }
  return out + "\"";
}

class JsonStringTest : public EncoderTest {
 protected:
  // Encodes one span whose attributes are (s, s) for each s in `strings`
  // and checks the attributes array against RefJsonString, byte for byte.
  void Check(const std::vector<std::string>& strings, std::string prefix = {}) {
    store_->spans.clear();
    auto provider = MakeCapturingProvider(store_);
    provider->GetTracer("s").StartSpan("x").End();
    ASSERT_EQ(store_->spans.size(), 1u);
    std::string expected = "\"attributes\":[";
    for (const auto& s : strings) {
      store_->spans[0]->attributes.push_back(KeyValue{s, s});
      if (expected.back() != '[') expected += ',';
      expected +=
          "{\"key\":" + RefJsonString(s) + ",\"value\":{\"stringValue\":" + RefJsonString(s) + "}}";
    }
    expected += "]";
    std::string out = prefix;
    otlp::EncodeJson(store_->spans, out);
    ASSERT_EQ(out.compare(0, prefix.size(), prefix), 0) << "appends to what `out` holds";
    size_t pos = out.find("\"attributes\":[", out.find("\"spans\":["));
    ASSERT_NE(pos, std::string::npos);
    ASSERT_EQ(out.substr(pos, expected.size()), expected);
    EXPECT_TRUE(nlohmann::json::accept(std::string_view(out).substr(prefix.size())));
  }
};

// Each piece (escapes, valid and invalid UTF-8) at every position in strings
// of every length up to 40, so that it meets each 8-byte boundary of the
// word-at-a-time scan, in short (< 8), two-word (8-16) and long strings.
TEST_F(JsonStringTest, EveryPieceAtEveryPosition) {
  const std::vector<std::string> pieces = {"\"",
                                           "\\",
                                           std::string(1, '\0'),
                                           "\x01",
                                           "\x1f",
                                           "\n",
                                           "\r",
                                           "\t",
                                           "\b",
                                           "\f",
                                           "\x7f",
                                           " ",
                                           "/",
                                           "\"\\\"",
                                           "\n\n\n\n\n\n\n\n\n",
                                           "\xc3\xa9",          // U+00E9
                                           "\xe2\x82\xac",      // U+20AC
                                           "\xf0\x9f\x98\x80",  // U+1F600
                                           "\xef\xbf\xbf",
                                           "\xf4\x8f\xbf\xbf",
                                           "\xed\x9f\xbf",
                                           "\xc2\x80",  // edges, valid
                                           "\x80",
                                           "\xbf",
                                           "\xff",
                                           "\xfe",
                                           "\xf5\x80\x80\x80",
                                           "\xf8\x88\x80\x80\x80",
                                           "\xc3",
                                           "\xe2\x82",
                                           "\xf0\x9f\x98",  // truncated
                                           "\xc0\xaf",
                                           "\xc1\xbf",
                                           "\xe0\x80\xaf",
                                           "\xf0\x80\x80\xaf",  // overlong
                                           "\xed\xa0\x80",
                                           "\xed\xbf\xbf",      // surrogates
                                           "\xf4\x90\x80\x80",  // > U+10FFFF
                                           "\xc3\xa9\xc3",
                                           "\xe2\x28\xa1",
                                           "\xc3\x28"};
  for (const auto& piece : pieces) {
    std::vector<std::string> strings;
    for (size_t len = 0; len <= 40; ++len) {
      for (size_t pos = 0; pos <= len; ++pos) {
        strings.push_back(std::string(pos, 'a') + piece + std::string(len - pos, 'b'));
      }
    }
    // Also the piece twice, 8 apart, and right at the end of an exact word.
    strings.push_back("abcdefg" + piece + "12345678" + piece);
    strings.push_back(std::string(16 - piece.size() % 16, 'z') + piece);
    SCOPED_TRACE(::testing::PrintToString(piece));
    Check(strings);
    if (HasFatalFailure()) return;
  }
}

// Every byte value at every position of strings of 1 to 24 bytes.
TEST_F(JsonStringTest, EveryByteAtEveryPosition) {
  for (size_t len = 1; len <= 24; ++len) {
    std::vector<std::string> strings;
    for (size_t pos = 0; pos < len; ++pos) {
      for (int b = 0; b < 256; ++b) {
        std::string s(len, 'x');
        s[pos] = static_cast<char>(b);
        strings.push_back(std::move(s));
      }
    }
    SCOPED_TRACE(len);
    Check(strings);
    if (HasFatalFailure()) return;
  }
  std::string all;
  for (int b = 255; b >= 0; --b) all += static_cast<char>(b);
  Check({all, all.substr(1), all.substr(3, 200)});
}

// Random mixes of clean text, escapes and UTF-8 fragments, valid or not.
TEST_F(JsonStringTest, RandomStrings) {
  static const char* const kPieces[] = {
      "\"",       "\\",           "\n",           "\x01",
      "\x7f",     "\xc3\xa9",     "\xe2\x82\xac", "\xf0\x9f\x98\x80",
      "\xc0\xaf", "\xed\xa0\x80", "\x80",         "\xff",
      "\xe2\x82", "\xf0"};
  std::mt19937 rng(42);
  for (int round = 0; round < 20; ++round) {
    std::vector<std::string> strings;
    for (int k = 0; k < 100; ++k) {
      size_t len = rng() % 80;
      std::string s;
      while (s.size() < len) {
        if (rng() % 4 != 0) {
          s += static_cast<char>('a' + rng() % 26);
        } else if (rng() % 3 == 0) {
          s += static_cast<char>(rng() % 256);
        } else {
          s += kPieces[rng() % (sizeof kPieces / sizeof *kPieces)];
        }
      }
      strings.push_back(std::move(s));
    }
    Check(strings);
    if (HasFatalFailure()) return;
  }
}

// Strings long enough to make the output grow while they are written (the
// escapes expand 2x, 3x and 6x), appended after what `out` already holds.
TEST_F(JsonStringTest, LongStringsAndAppending) {
  Check({std::string(100000, '"'), std::string(100000, '\x01'), std::string(60000, '\xff'),
         std::string(100001, 'x') + "\n", "end"},
        "previous line\n");
  std::string mixed;
  for (int i = 0; i < 20000; ++i) mixed += i % 7 == 0 ? "\xe2\x82\xac\\" : "abcdefghijk";
  Check({mixed, mixed.substr(5)}, std::string(5000, 'p'));
}

// Integers as to_string writes them, around each power of ten; ids in hex.
TEST_F(EncoderTest, JsonNumbersAndIds) {
  std::vector<uint64_t> values = {0, std::numeric_limits<uint64_t>::max(),
                                  std::numeric_limits<uint64_t>::max() - 1, uint64_t{1} << 63,
                                  1755000000123456789u};
  for (uint64_t p = 1; p <= std::numeric_limits<uint64_t>::max() / 10; p *= 10) {
    for (uint64_t v : {p - 1, p, p + 1, 2 * p, 9 * p, 10 * p - 1}) values.push_back(v);
  }
  std::mt19937_64 rng(7);
  for (int i = 0; i < 200; ++i) values.push_back(rng() >> (rng() % 64));
  // Times one after another in one second and across seconds: the digits
  // of the seconds are kept from one time to the next (QuotedTime).
  for (uint64_t v : {uint64_t{1755000000000000001u}, uint64_t{1755000000000000000u},
                     uint64_t{1755000000099999999u}, uint64_t{1755000000100000000u},
                     uint64_t{1755000000999999999u}, uint64_t{1755000001000000000u},
                     uint64_t{1755000001000000000u}, uint64_t{999999999}, uint64_t{1000000000},
                     uint64_t{1000000001}, uint64_t{9999999999}, uint64_t{10000000000}}) {
    values.push_back(v);
  }

  auto provider = MakeCapturingProvider(store_);
  auto tracer = provider->GetTracer("s");
  for (size_t i = 0; i < values.size(); ++i) tracer.StartSpan("n").End();
  std::vector<std::string> expected;
  for (size_t i = 0; i < values.size(); ++i) {
    SpanData& s = *store_->spans[i];
    uint64_t v = values[i];
    auto sv = static_cast<int64_t>(v);
    auto neg = static_cast<int64_t>(0 - v);  // wraps, as INT64_MIN has no negation
    s.start_unix_nano = v;
    s.end_unix_nano = values[values.size() - 1 - i];
    s.attributes = {{"i", sv}, {"neg", neg}, {"d", static_cast<double>(sv) / 3}};
    s.dropped_attributes_count = static_cast<uint32_t>(v);
    s.events.push_back(Event{"e", v / 3, {}, 0});
    char d[32];
    auto r = std::to_chars(d, d + sizeof d, static_cast<double>(sv) / 3);
    expected.push_back(
        "{\"traceId\":\"" + s.context.trace_id().ToHex() + "\",\"spanId\":\"" +
        s.context.span_id().ToHex() + "\",\"flags\":" + std::to_string(otlp::SpanFlags(s)) +
        ",\"name\":\"n\",\"kind\":1,\"startTimeUnixNano\":\"" + std::to_string(v) +
        "\",\"endTimeUnixNano\":\"" + std::to_string(s.end_unix_nano) +
        "\",\"attributes\":[{\"key\":\"i\",\"value\":{\"intValue\":\"" + std::to_string(sv) +
        "\"}},{\"key\":\"neg\",\"value\":{\"intValue\":\"" + std::to_string(neg) +
        "\"}},{\"key\":\"d\",\"value\":{\"doubleValue\":" + std::string(d, r.ptr) + "}}]" +
        (s.dropped_attributes_count
             ? ",\"droppedAttributesCount\":" + std::to_string(s.dropped_attributes_count)
             : "") +
        ",\"events\":[{\"timeUnixNano\":\"" + std::to_string(v / 3) +
        "\",\"name\":\"e\",\"attributes\":[]}]}");
  }
  store_->spans[0]->attributes.push_back(
      {"special", std::vector<double>{NAN, INFINITY, -INFINITY, -0.0, 1e300}});
  store_->spans[0]->attributes.push_back({"min", int64_t{std::numeric_limits<int64_t>::min()}});
  std::string out;
  otlp::EncodeJson(store_->spans, out);
  for (const auto& e : expected) {
    if (&e == &expected[0]) continue;  // has the extra attributes
    EXPECT_NE(out.find(e), std::string::npos) << e;
  }
  EXPECT_NE(out.find("{\"key\":\"special\",\"value\":{\"arrayValue\":{\"values\":["
                     "{\"doubleValue\":\"NaN\"},{\"doubleValue\":\"Infinity\"},"
                     "{\"doubleValue\":\"-Infinity\"},{\"doubleValue\":-0},"
                     "{\"doubleValue\":1e+300}]}}},{\"key\":\"min\",\"value\":{\"intValue\":"
                     "\"-9223372036854775808\"}}"),
            std::string::npos);
  auto j = nlohmann::json::parse(out);
  auto& spans = j["resourceSpans"][0]["scopeSpans"][0]["spans"];
  ASSERT_EQ(spans.size(), values.size());
  EXPECT_EQ(spans[0]["startTimeUnixNano"], std::to_string(values[0]));
}

// Ids that repeat from span to span (a trace's spans, siblings' parent) and
// ids that alternate: each span's as its record has them.
TEST_F(EncoderTest, JsonIdsRepeatedAndAlternating) {
  auto provider = MakeCapturingProvider(store_);
  auto tracer = provider->GetTracer("s");
  for (int round = 0; round < 3; ++round) {
    Span root1 = tracer.StartSpan("root1");
    Span root2 = tracer.StartSpan("root2");
    for (int i = 0; i < 3; ++i) {
      StartSpanOptions o1;
      o1.parent = root1.context();
      tracer.StartSpan("child1", std::move(o1)).End();
      StartSpanOptions o2;
      o2.parent = root2.context();
      Span child2 = tracer.StartSpan("child2", std::move(o2));
      StartSpanOptions o3;
      o3.parent = child2.context();
      tracer.StartSpan("grandchild2", std::move(o3)).End();
      child2.End();
      StartSpanOptions o4;
      o4.parent = root1.context();
      tracer.StartSpan("child1", std::move(o4)).End();
    }
    root2.End();
    root1.End();
  }
  std::string out;
  otlp::EncodeJson(store_->spans, out);
  auto spans = nlohmann::json::parse(out)["resourceSpans"][0]["scopeSpans"][0]["spans"];
  ASSERT_EQ(spans.size(), store_->spans.size());
  for (size_t i = 0; i < spans.size(); ++i) {
    const SpanData& s = *store_->spans[i];
    SCOPED_TRACE(i);
    EXPECT_EQ(spans[i]["traceId"], s.context.trace_id().ToHex());
    EXPECT_EQ(spans[i]["spanId"], s.context.span_id().ToHex());
    if (s.parent_span_id.IsValid()) {
      EXPECT_EQ(spans[i]["parentSpanId"], s.parent_span_id.ToHex());
    } else {
      EXPECT_FALSE(spans[i].contains("parentSpanId"));
    }
  }
}

TEST(ResponseDecodingTest, PartialSuccessProtobufAndJson) {
  // ExportTraceServiceResponse{partial_success{rejected_spans: 3, error_message: "no"}}
  std::string body = std::string("\x0a\x06\x08\x03\x12\x02no", 8);
  auto ps = otlp::DecodeResponseProtobuf(body);
  ASSERT_TRUE(ps);
  EXPECT_EQ(ps->rejected_spans, 3);
  EXPECT_EQ(ps->error_message, "no");
  EXPECT_EQ(otlp::DecodeResponseProtobuf("")->rejected_spans, 0);
  ps = otlp::DecodeResponseJson(R"({"partialSuccess":{"rejectedSpans":"7","errorMessage":"x"}})");
  ASSERT_TRUE(ps);
  EXPECT_EQ(ps->rejected_spans, 7);
  EXPECT_EQ(otlp::DecodeResponseJson("{}")->rejected_spans, 0);
  EXPECT_FALSE(otlp::DecodeResponseJson("{"));
}

TEST(ResponseDecodingTest, RpcStatusWithRetryInfo) {
  // Status{code: 8, message: "slow down", details: [Any{RetryInfo{retry_delay{seconds: 2, nanos:
  // 5e8}}}]}
  std::string duration = std::string("\x08\x02\x10\x80\xca\xb5\xee\x01", 8);
  std::string retry_info = "\x0a" + std::string(1, static_cast<char>(duration.size())) + duration;
  std::string type = "type.googleapis.com/google.rpc.RetryInfo";
  std::string any = "\x0a" + std::string(1, static_cast<char>(type.size())) + type + "\x12" +
                    std::string(1, static_cast<char>(retry_info.size())) + retry_info;
  std::string status = std::string("\x08\x08\x12\x09slow down", 13) + "\x1a" +
                       std::string(1, static_cast<char>(any.size())) + any;
  auto st = otlp::DecodeRpcStatus(status);
  ASSERT_TRUE(st);
  EXPECT_EQ(st->code, 8);
  EXPECT_EQ(st->message, "slow down");
  ASSERT_TRUE(st->retry_delay_ms);
  EXPECT_EQ(*st->retry_delay_ms, 2500);
}

}  // namespace
}  // namespace prism::tracing
