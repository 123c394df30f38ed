#include "prism/grpc_tracing/semconv.h"

#include <gtest/gtest.h>

namespace prism::grpc_tracing {
namespace {

TEST(Semconv, SplitMethod) {
  auto m = SplitMethod("/prism.v1.KeyValue/Get");
  EXPECT_EQ(m.full, "prism.v1.KeyValue/Get");
  EXPECT_EQ(m.service, "prism.v1.KeyValue");
  EXPECT_EQ(m.method, "Get");
  m = SplitMethod("");
  EXPECT_EQ(m.full, "");
  m = SplitMethod("weird");
  EXPECT_EQ(m.service, "weird");
  EXPECT_EQ(m.method, "");
}

TEST(Semconv, ParseTarget) {
  auto e = ParseTarget("unix:///run/prism/x.sock");
  EXPECT_EQ(e.address, "/run/prism/x.sock");
  EXPECT_EQ(e.port, 0);
  e = ParseTarget("unix:rel.sock");
  EXPECT_EQ(e.address, "rel.sock");
  e = ParseTarget("127.0.0.1:6051");
  EXPECT_EQ(e.address, "127.0.0.1");
  EXPECT_EQ(e.port, 6051);
  e = ParseTarget("dns:///grpc.io:50051");
  EXPECT_EQ(e.address, "grpc.io");
  EXPECT_EQ(e.port, 50051);
  e = ParseTarget("dns://1.2.3.4/grpc.io:50051");
  EXPECT_EQ(e.address, "grpc.io");
  EXPECT_EQ(e.port, 50051);
  e = ParseTarget("[::1]:7000");
  EXPECT_EQ(e.address, "::1");
  EXPECT_EQ(e.port, 7000);
  e = ParseTarget("ipv4:10.0.0.1:80,10.0.0.2:80");
  EXPECT_EQ(e.address, "10.0.0.1");
  EXPECT_EQ(e.port, 80);
  e = ParseTarget("localhost:99999999");
  EXPECT_EQ(e.port, 0);
  e = ParseTarget("");
  EXPECT_EQ(e.address, "");
}

TEST(Semconv, ParsePeer) {
  auto e = ParsePeer("ipv4:127.0.0.1:5555");
  EXPECT_EQ(e.address, "127.0.0.1");
  EXPECT_EQ(e.port, 5555);
  e = ParsePeer("ipv6:[::1]:5555");
  EXPECT_EQ(e.address, "::1");
  EXPECT_EQ(e.port, 5555);
  e = ParsePeer("unix:/tmp/x.sock");
  EXPECT_EQ(e.address, "/tmp/x.sock");
  EXPECT_EQ(e.port, 0);
}

TEST(Semconv, ServerErrors) {
  EXPECT_TRUE(IsServerError(grpc::StatusCode::INTERNAL));
  EXPECT_TRUE(IsServerError(grpc::StatusCode::DEADLINE_EXCEEDED));
  EXPECT_FALSE(IsServerError(grpc::StatusCode::INVALID_ARGUMENT));
  EXPECT_FALSE(IsServerError(grpc::StatusCode::NOT_FOUND));
  EXPECT_EQ(StatusCodeName(grpc::StatusCode::DATA_LOSS), "DATA_LOSS");
  EXPECT_EQ(StatusCodeName(static_cast<grpc::StatusCode>(99)), "UNKNOWN");
}

}  // namespace
}  // namespace prism::grpc_tracing
