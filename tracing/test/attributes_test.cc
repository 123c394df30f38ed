#include "prism/tracing/attributes.h"

#include <gtest/gtest.h>

#include <string>
#include <utility>

#include "test_util.h"

namespace prism::tracing {
namespace {

constexpr AttributeKey kConstant = "rpc.grpc.status_code";

TEST(AttributeKey, ALiteralIsPointedAtNotCopied) {
  static constexpr char kLiteral[] = "network.peer.address";
  AttributeKey k = kLiteral;
  EXPECT_EQ(k.data(), kLiteral);
  EXPECT_EQ(k.view(), "network.peer.address");
  AttributeKey copy = k;
  EXPECT_EQ(copy.data(), kLiteral);
  AttributeKey from_constant = kConstant;
  EXPECT_EQ(from_constant.data(), kConstant.data());
  EXPECT_EQ(from_constant, "rpc.grpc.status_code");
}

TEST(AttributeKey, AnyOtherStringIsCopied) {
  std::string text = "prism.request_id.that.is.long";
  AttributeKey from_string = text;
  AttributeKey from_view = std::string_view(text);
  const char* pointer = text.c_str();
  AttributeKey from_pointer = pointer;
  char array[] = "array.key";
  AttributeKey from_array = array;
  EXPECT_NE(from_string.data(), text.data());
  EXPECT_NE(from_view.data(), text.data());
  EXPECT_NE(from_pointer.data(), text.data());
  EXPECT_NE(from_array.data(), static_cast<const char*>(array));
  text.assign(text.size(), 'x');  // the copies do not follow the source
  array[0] = 'X';
  EXPECT_EQ(from_string, "prism.request_id.that.is.long");
  EXPECT_EQ(from_view, "prism.request_id.that.is.long");
  EXPECT_EQ(from_pointer, "prism.request_id.that.is.long");
  EXPECT_EQ(from_array, "array.key");
}

TEST(AttributeKey, CopiesAndMovesOfAnOwnedKeyStayValid) {
  AttributeKey a = std::string("owned.key");
  AttributeKey b = a;  // a deep copy
  EXPECT_NE(a.data(), b.data());
  AttributeKey c = std::move(a);
  EXPECT_EQ(c, "owned.key");
  EXPECT_TRUE(a.empty());  // NOLINT: moved-from is empty by contract
  b = c;
  c = "literal";
  EXPECT_EQ(b, "owned.key");
  EXPECT_EQ(c, "literal");
  b = std::move(c);
  EXPECT_EQ(b, "literal");
  AttributeKey d;
  EXPECT_TRUE(d.empty());
  EXPECT_EQ(d.view(), "");
}

TEST(AttributeKey, ComparesByContent) {
  AttributeKey literal = "a.b";
  AttributeKey owned = std::string("a.b");
  EXPECT_EQ(literal, owned);
  EXPECT_EQ(literal, std::string("a.b"));
  EXPECT_EQ(literal, std::string_view("a.b"));
  EXPECT_FALSE(literal == "a.c");
  EXPECT_EQ("x." + literal, "x.a.b");
  EXPECT_EQ(literal + ".c", "a.b.c");
}

TEST(AttributeKey, PlainMeansJsonNeedsNoEscapes) {
  EXPECT_TRUE(AttributeKey("rpc.method").plain());
  EXPECT_TRUE(AttributeKey(std::string("rpc.method")).plain());
  EXPECT_FALSE(AttributeKey("we\"ird").plain());
  EXPECT_FALSE(AttributeKey("back\\slash").plain());
  EXPECT_FALSE(AttributeKey("caf\xc3\xa9").plain());
  EXPECT_FALSE(AttributeKey(std::string("tab\there")).plain());
  EXPECT_FALSE(AttributeKey(std::string("del\x7f")).plain());
  AttributeKey moved = AttributeKey(std::string("q\"q"));
  EXPECT_FALSE(AttributeKey(moved).plain());
}

// Span::SetAttribute skips the search for an existing key when the span's
// key filter says the key is new; with more keys than filter bits the
// filter fills up, so this checks replacement under many collisions.
TEST(AttributeKey, ReplacingKeepsOneEntryPerKeyUnderFilterCollisions) {
  InMemorySpanRecorder rec;
  auto provider = testing::RecordingProvider(rec);
  constexpr int kKeys = 100;  // within the default limit of 128
  {
    Span span = provider->GetTracer("t").StartSpan("op");
    for (int round = 0; round < 3; ++round) {
      for (int i = 0; i < kKeys; ++i) span.SetAttribute("k" + std::to_string(i), round * 1000 + i);
    }
    span.SetAttributes({{"k7", int64_t{-7}}});
  }
  const SpanData s = rec.spans().at(0);
  ASSERT_EQ(s.attributes.size(), static_cast<size_t>(kKeys));
  EXPECT_EQ(s.dropped_attributes_count, 0u);
  for (int i = 0; i < kKeys; ++i) {
    EXPECT_EQ(s.attributes[i].key, "k" + std::to_string(i));
    EXPECT_EQ(std::get<int64_t>(s.attributes[i].value), i == 7 ? -7 : 2000 + i);
  }
}

TEST(AttributeKey, StartAttributesSeedTheFilter) {
  InMemorySpanRecorder rec;
  auto provider = testing::RecordingProvider(rec);
  {
    StartSpanOptions o;
    o.attributes = {{"a", int64_t{1}}, {"b", int64_t{2}}};
    Span span = provider->GetTracer("t").StartSpan("op", std::move(o));
    span.SetAttribute("a", int64_t{3});
    span.SetAttribute("c", int64_t{4});
  }
  const SpanData s = rec.spans().at(0);
  ASSERT_EQ(s.attributes.size(), 3u);
  EXPECT_EQ(std::get<int64_t>(*s.FindAttribute("a")), 3);
}

}  // namespace
}  // namespace prism::tracing
