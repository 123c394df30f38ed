#include "wire.h"

#include <grpcpp/support/byte_buffer.h>
#include <gtest/gtest.h>

#include <random>

#include "prism/v1/kv.pb.h"

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
  EXPECT_EQ(*ReadNamespace(buffer), "multi-slice");
}

TEST(Wire, Utf8) {
  EXPECT_TRUE(IsValidUtf8("héllo €"));
  EXPECT_FALSE(IsValidUtf8("\xc0\x80"));      // overlong
  EXPECT_FALSE(IsValidUtf8("\xed\xa0\x80"));  // surrogate
  EXPECT_FALSE(IsValidUtf8("\xe2\x82"));      // truncated
}

}  // namespace
}  // namespace prism::proxy
