#include "wire.h"

#include <grpcpp/support/byte_buffer.h>
#include <gtest/gtest.h>

#include <random>

#include "prism/v1/kv.pb.h"
#include "prism/v1/pubsub.pb.h"

namespace prism::proxy {
namespace {

TEST(Wire, ReadsNamespaceOfEveryRequestType) {
  prism::v1::GetRequest get;
  get.set_namespace_("orders");
  get.set_key("k");
  EXPECT_EQ(*ReadNamespace(get.SerializeAsString()), "orders");

  prism::v1::BatchSetRequest bs;
  bs.set_namespace_("users");
  auto* item = bs.add_items();
  item->set_key("a");
  item->set_value(std::string(100000, 'x'));
  EXPECT_EQ(*ReadNamespace(bs.SerializeAsString()), "users");
}

TEST(Wire, FieldOrderAndLastOneWins) {
  // key (field 2) first, then namespace twice: protobuf keeps the last.
  std::string bytes =
      "\x12\x01k"
      "\x0a\x01"
      "a"
      "\x0a\x02"
      "bb";
  EXPECT_EQ(*ReadNamespace(bytes), "bb");
}

TEST(Wire, EmptyMessageHasEmptyNamespace) { EXPECT_EQ(*ReadNamespace(""), ""); }

TEST(Wire, RejectsMalformedInput) {
  const std::string bad[] = {
      std::string("\x0a"),  // truncated length
      std::string("\x0a\x05"
                  "ab"),                                                // length past the end
      std::string("\x08\x01"),                                          // field 1 as varint
      std::string("\x00\x01", 2),                                       // field number 0
      std::string("\x13"),                                              // group start (wire type 3)
      std::string("\x17"),                                              // wire type 7
      std::string("\x10\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01"),  // 11-byte varint
      std::string("\x0a\x02\xc3\x28"),                                  // invalid UTF-8 namespace
      std::string("\x11\x01\x02"),                                      // truncated fixed64
  };
  for (const auto& b : bad) {
    auto r = ReadNamespace(b);
    EXPECT_FALSE(r.ok());
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  }
}

TEST(Wire, RandomBytesNeverCrash) {
  std::mt19937 rng(42);
  for (int i = 0; i < 20000; ++i) {
    std::string b(rng() % 40, '\0');
    for (auto& c : b) c = static_cast<char>(rng());
    (void)ReadNamespace(b);
  }
}

TEST(Wire, ByteBufferWithSeveralSlices) {
  prism::v1::GetRequest get;
  get.set_namespace_("multi-slice");
  get.set_key("key");
  std::string bytes = get.SerializeAsString();
  grpc::Slice parts[] = {grpc::Slice(bytes.substr(0, 3)), grpc::Slice(bytes.substr(3, 4)),
                         grpc::Slice(bytes.substr(7))};
  grpc::ByteBuffer buffer(parts, 3);
  EXPECT_EQ(*ReadRequest(buffer, RequestShape::kKey), "multi-slice");
}

// The namespace limit at its boundary: 256 bytes pass, 257 are refused with
// the plugins' message, before anything is copied.
TEST(Wire, NamespaceLimit) {
  prism::v1::GetRequest get;
  get.set_key("k");
  get.set_namespace_(std::string(256, 'n'));
  auto ok = ReadRequest(get.SerializeAsString(), RequestShape::kKey);
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_EQ(ok->size(), 256u);
  get.set_namespace_(std::string(257, 'n'));
  auto bad = ReadRequest(get.SerializeAsString(), RequestShape::kKey);
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(bad.status().message(), "namespace is 257 bytes; the limit is 256");
  get.set_namespace_(std::string(4000000, 'n'));
  EXPECT_EQ(ReadRequest(get.SerializeAsString(), RequestShape::kKey).status().message(),
            "namespace is 4000000 bytes; the limit is 256");
}

// What protobuf would refuse to parse is INVALID_ARGUMENT with a message that
// names the field, for every request shape.
TEST(Wire, RefusesWhatProtobufCannotParse) {
  auto with_key = [](std::string field2) {
    return std::string("\x0a\x01n", 3) + "\x12" + static_cast<char>(field2.size()) + field2;
  };
  struct Case {
    std::string bytes;
    RequestShape shape;
    std::string message;
  } cases[] = {
      {with_key("\xc3\x28"), RequestShape::kKey, "key is not valid UTF-8"},
      {with_key("\xff"), RequestShape::kSet, "key is not valid UTF-8"},
      {with_key("ok") + "\x12\x01\xff", RequestShape::kKeys, "keys[1] is not valid UTF-8"},
      // items[0] = {key: "\xff"}: a KeyValuePair whose key is not UTF-8.
      {with_key(std::string("\x0a\x01\xff", 3)), RequestShape::kItems,
       "items[0].key is not valid UTF-8"},
      // items[0] = a truncated varint (field 2 of the pair as varint, no bytes).
      {with_key(std::string("\x10", 1)), RequestShape::kItems,
       "malformed request: items[0]: truncated varint"},
      {std::string("\x0a\x01n\x18\x80", 5), RequestShape::kKey,
       "malformed request: truncated varint"},
      {std::string("\x0a\x01\xff", 3), RequestShape::kAny, "namespace is not valid UTF-8"},
  };
  for (const auto& c : cases) {
    auto r = ReadRequest(c.bytes, c.shape);
    ASSERT_FALSE(r.ok()) << c.message;
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(r.status().message(), c.message);
  }
  // The same bytes are fine where field 2 is not a string: a value is bytes,
  // and an unknown field is skipped as protobuf skips it.
  EXPECT_TRUE(ReadRequest(with_key("\xff"), RequestShape::kAny).ok());
  prism::v1::SetRequest set;
  set.set_namespace_("n");
  set.set_key("k");
  set.set_value("\xff\x00\xfe");
  EXPECT_TRUE(ReadRequest(set.SerializeAsString(), RequestShape::kSet).ok());
  prism::v1::BatchSetRequest bs;
  bs.set_namespace_("n");
  for (int i = 0; i < 3; ++i) {
    auto* item = bs.add_items();
    item->set_key("k" + std::to_string(i));
    item->set_value("\xff");
  }
  EXPECT_EQ(*ReadRequest(bs.SerializeAsString(), RequestShape::kItems), "n");
}

// PubSub: the subject and queue group are checked like keys; a Message's
// fields are read and replaced without decoding it (SubscribeReactor).
TEST(Wire, PubSubRequestsAndMessageFields) {
  prism::v1::SubscribeRequest sub;
  sub.set_namespace_("events");
  sub.set_subject("orders.*");
  sub.set_queue_group("workers");
  EXPECT_EQ(*ReadRequest(sub.SerializeAsString(), RequestShape::kSubscribe), "events");
  std::string bad_group = sub.SerializeAsString() + std::string("\x1a\x01\xff", 3);
  auto st = ReadRequest(bad_group, RequestShape::kSubscribe);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.status().message(), "queue_group is not valid UTF-8");
  std::string bad_subject = std::string("\x0a\x01n\x12\x01\xff", 6);
  EXPECT_EQ(ReadRequest(bad_subject, RequestShape::kPublish).status().message(),
            "subject is not valid UTF-8");

  prism::v1::Message m;
  m.set_subject("orders.eu");
  m.set_data(std::string(300, 'd'));
  m.set_traceparent("00-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-bbbbbbbbbbbbbbbb-01");
  m.set_dropped(3);
  std::string bytes = m.SerializeAsString();
  EXPECT_EQ(LastStringField(bytes, 1), "orders.eu");
  EXPECT_EQ(LastStringField(bytes, 2)->size(), 300u);
  EXPECT_EQ(LastStringField(bytes, 4), std::nullopt);
  const std::string mine = "00-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-cccccccccccccccc-01";
  AppendStringField(bytes, 3, mine);
  EXPECT_EQ(LastStringField(bytes, 3), mine);
  prism::v1::Message parsed;
  ASSERT_TRUE(parsed.ParseFromString(bytes));
  EXPECT_EQ(parsed.traceparent(), mine) << "protobuf keeps the appended field";
  EXPECT_EQ(parsed.dropped(), 3u);
  EXPECT_EQ(parsed.data().size(), 300u);
  // A value of 200 bytes takes a two-byte length varint.
  std::string long_value(200, 'v');
  std::string one;
  AppendStringField(one, 3, long_value);
  ASSERT_TRUE(parsed.ParseFromString(one));
  EXPECT_EQ(parsed.traceparent(), long_value);
  EXPECT_EQ(LastStringField(std::string("\x1a\x05" "ab", 4), 3), std::nullopt) << "truncated";
}

TEST(Wire, Utf8) {
  EXPECT_TRUE(IsValidUtf8("héllo €"));
  EXPECT_FALSE(IsValidUtf8("\xc0\x80"));      // overlong
  EXPECT_FALSE(IsValidUtf8("\xed\xa0\x80"));  // surrogate
  EXPECT_FALSE(IsValidUtf8("\xe2\x82"));      // truncated
}

}  // namespace
}  // namespace prism::proxy
