#include <gtest/gtest.h>

#include <cstring>
#include <map>
#include <nlohmann/json.hpp>

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
  c.StartSpan("c1").End();
  for (auto& s : store2->spans) store_->spans.push_back(std::move(s));
  std::string out;
  otlp::EncodeJson(store_->spans, out);
  auto j = nlohmann::json::parse(out);
  ASSERT_EQ(j["resourceSpans"].size(), 2u);
  auto& r1 = j["resourceSpans"][0];
  ASSERT_EQ(r1["scopeSpans"].size(), 2u);
  EXPECT_EQ(r1["scopeSpans"][0]["scope"]["name"], "a");
  EXPECT_EQ(r1["scopeSpans"][0]["spans"].size(), 2u);
  EXPECT_EQ(r1["scopeSpans"][1]["scope"]["name"], "b");
  EXPECT_EQ(j["resourceSpans"][1]["scopeSpans"][0]["spans"][0]["name"], "c1");

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
  EXPECT_EQ(span["events"][0]["timeUnixNano"].is_string(), true);
  EXPECT_EQ(j["resourceSpans"][0]["scopeSpans"][0]["spans"][1]["kind"], 3);
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
