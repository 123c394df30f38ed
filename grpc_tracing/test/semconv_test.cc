#include "prism/grpc_tracing/semconv.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <string>

#include "prism/tracing/in_memory_recorder.h"
#include "prism/tracing/sampler.h"
#include "prism/tracing/tracer.h"

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

TEST(Semconv, ParseHostPort) {
  struct Case {
    const char* in;
    bool ok;
    const char* address;
    int port;
  } cases[] = {
      {"127.0.0.1:6051", true, "127.0.0.1", 6051},
      {"localhost:0", true, "localhost", 0},
      {"[::1]:7000", true, "::1", 7000},
      {"dns:///db.example:5432", true, "db.example", 5432},
      {"dns:db.example:5432", true, "db.example", 5432},
      {"ipv4:10.0.0.1:80", true, "10.0.0.1", 80},
      {"ipv6:[::1]:80", true, "::1", 80},
      {"h:65535", true, "h", 65535},
      {"h:65536", false, "", 0},
      {"h:99999999", false, "", 0},
      {"h:", false, "", 0},
      {"h:8o", false, "", 0},
      {"h:-1", false, "", 0},
      {":80", false, "", 0},
      {"nonsense", false, "", 0},
      {"::1:80", false, "", 0},
      {"[::1]", false, "", 0},
      {"[::1:80", false, "", 0},
      {"unix:///tmp/x.sock", false, "", 0},
      {"", false, "", 0},
  };
  for (const auto& c : cases) {
    auto e = ParseHostPort(c.in);
    ASSERT_EQ(e.has_value(), c.ok) << c.in;
    if (e) {
      EXPECT_EQ(e->address, c.address) << c.in;
      EXPECT_EQ(e->port, c.port) << c.in;
    }
  }
}

TEST(Semconv, ParsePeer) {
  struct Case {
    const char* peer;
    const char* address;
    int port;
  } cases[] = {
      {"ipv4:127.0.0.1:5555", "127.0.0.1", 5555},
      {"ipv6:[::1]:5555", "::1", 5555},
      // What gRPC 1.51 gives: the peer as a URI, brackets and zone escaped.
      {"ipv6:%5B::1%5D:54582", "::1", 54582},
      {"ipv6:%5Bfe80::1%25eth0%5D:80", "fe80::1%eth0", 80},
      // A stray '%' is kept, not read past the end.
      {"ipv6:%5B::1%5D:5%", "::1", 0},
      {"unix:/tmp/x.sock", "/tmp/x.sock", 0},
  };
  // Each case twice in a row (the second is the thread's kept answer), then
  // all of them again in turn; "unix:" and "" after a peer that has a port.
  for (int pass = 0; pass < 2; ++pass) {
    for (const auto& c : cases) {
      for (int again = 0; again < 2 - pass; ++again) {
        const Endpoint e = ParsePeer(c.peer);
        EXPECT_EQ(e.address, c.address) << c.peer;
        EXPECT_EQ(e.port, c.port) << c.peer;
      }
    }
  }
  for (const char* peer : {"unix:", ""}) {
    EXPECT_EQ(ParsePeer("ipv4:10.0.0.1:80").port, 80);
    const Endpoint e = ParsePeer(peer);
    EXPECT_EQ(e.address, "") << peer;
    EXPECT_EQ(e.port, 0) << peer;
  }
}

TEST(Semconv, ServerErrors) {
  EXPECT_TRUE(IsServerError(grpc::StatusCode::INTERNAL));
  EXPECT_TRUE(IsServerError(grpc::StatusCode::DEADLINE_EXCEEDED));
  EXPECT_FALSE(IsServerError(grpc::StatusCode::INVALID_ARGUMENT));
  EXPECT_FALSE(IsServerError(grpc::StatusCode::NOT_FOUND));
  EXPECT_EQ(StatusCodeName(grpc::StatusCode::DATA_LOSS), "DATA_LOSS");
  EXPECT_EQ(StatusCodeName(static_cast<grpc::StatusCode>(99)), "UNKNOWN");
}

// OTEL_SEMCONV_STABILITY_OPT_IN: `rpc` keeps only the current names,
// `rpc/dup` (or anything else, or nothing) both; rpc/dup wins over rpc.
TEST(Semconv, StabilityOptInParsing) {
  EXPECT_EQ(ParseRpcConventions(""), RpcConventions::kBoth);
  EXPECT_EQ(ParseRpcConventions("rpc"), RpcConventions::kCurrent);
  EXPECT_EQ(ParseRpcConventions(" http , RPC "), RpcConventions::kCurrent);
  EXPECT_EQ(ParseRpcConventions("rpc/dup"), RpcConventions::kBoth);
  EXPECT_EQ(ParseRpcConventions("rpc,rpc/dup"), RpcConventions::kBoth);
  EXPECT_EQ(ParseRpcConventions("http,database"), RpcConventions::kBoth);
  EXPECT_EQ(ParseRpcConventions("rpcx"), RpcConventions::kBoth);
}

std::string Keys(const prism::tracing::Attributes& a) {
  std::string k;
  for (const auto& kv : a)
    k += kv.key +
         (std::holds_alternative<std::string>(kv.value)
              ? "=" + std::get<std::string>(kv.value)
              : "=" + std::to_string(std::get<int64_t>(kv.value))) +
         ";";
  return k;
}

TEST(Semconv, AttributesForEachConvention) {
  auto m = SplitMethod("/prism.v1.KeyValue/Get");
  Endpoint e{"db.example", 50051};
  EXPECT_EQ(Keys(RpcStartAttributes(m, e, RpcConventions::kBoth)),
            "rpc.system=grpc;rpc.system.name=grpc;rpc.service=prism.v1.KeyValue;rpc.method=Get;"
            "server.address=db.example;server.port=50051;");
  EXPECT_EQ(Keys(RpcStartAttributes(m, e, RpcConventions::kCurrent)),
            "rpc.system.name=grpc;rpc.method=prism.v1.KeyValue/Get;server.address=db.example;"
            "server.port=50051;");

  prism::tracing::InMemorySpanRecorder recorder;
  prism::tracing::TracerProviderOptions o;
  o.processors.push_back(recorder.MakeProcessor());
  o.sampler = prism::tracing::MakeAlwaysOnSampler();
  prism::tracing::TracerProvider provider(std::move(o));
  auto tracer = provider.GetTracer("test");
  for (auto c : {RpcConventions::kBoth, RpcConventions::kCurrent}) {
    auto span = tracer.StartSpan(c == RpcConventions::kBoth ? "both" : "current");
    SetRpcStatus(span, grpc::Status(grpc::StatusCode::UNAVAILABLE, "down"), false, c);
    span.End();
  }
  auto both = recorder.SpansNamed("both");
  auto current = recorder.SpansNamed("current");
  ASSERT_EQ(both.size(), 1u);
  ASSERT_EQ(current.size(), 1u);
  EXPECT_EQ(Keys(both[0].attributes),
            "rpc.grpc.status_code=14;rpc.status_code=UNAVAILABLE;"
            "error.type=UNAVAILABLE;");
  EXPECT_EQ(Keys(current[0].attributes), "rpc.status_code=UNAVAILABLE;error.type=UNAVAILABLE;");
  EXPECT_EQ(current[0].status, prism::tracing::StatusCode::kError);
}

// RpcEndBlocks records what SetRpcStatus records, for every code, side and
// convention: a span that refers to the start block ends referring to the
// code's block; any other span (its block replaced, none, or a code out of
// range) gets the attributes one by one.
TEST(Semconv, EndBlocksRecordWhatSetRpcStatusRecords) {
  prism::tracing::InMemorySpanRecorder recorder;
  prism::tracing::TracerProviderOptions o;
  o.processors.push_back(recorder.MakeProcessor());
  o.sampler = prism::tracing::MakeAlwaysOnSampler();
  prism::tracing::TracerProvider provider(std::move(o));
  auto tracer = provider.GetTracer("test");
  const MethodName m = SplitMethod("/prism.v1.KeyValue/Get");
  for (auto c : {RpcConventions::kBoth, RpcConventions::kCurrent}) {
    for (bool server_side : {true, false}) {
      auto start = prism::tracing::AttributeBlock::Make(RpcStartAttributes(m, {"h", 1}, c));
      const RpcEndBlocks end(start, server_side, c);
      for (int code : {0, 1, 2, 4, 5, 13, 14, 16, 17, 99}) {
        const grpc::Status status(static_cast<grpc::StatusCode>(code), code ? "why" : "");
        SCOPED_TRACE(std::to_string(code) + (server_side ? " server" : " client"));
        recorder.Clear();
        for (const char* name : {"want", "got", "no-block"}) {
          prism::tracing::StartSpanOptions so;
          if (std::string_view(name) != "no-block") so.shared_attributes = start;
          auto span = tracer.StartSpan(name, std::move(so));
          span.SetAttribute("own", int64_t{1});
          if (std::string_view(name) == "want") {
            SetRpcStatus(span, status, server_side, c);
          } else {
            SetRpcStatus(span, status, end);
          }
          if (std::string_view(name) == "got") {
            // The recorder keeps copies with the block copied in: look now.
            if (code <= 16) {
              EXPECT_EQ(span.data()->shared_attributes,
                        *end.For(static_cast<grpc::StatusCode>(code)));
            } else {
              EXPECT_EQ(end.For(static_cast<grpc::StatusCode>(code)), nullptr);
              EXPECT_EQ(span.data()->shared_attributes, start);
            }
          }
          span.End();
        }
        const auto want = recorder.SpansNamed("want").at(0);
        const auto got = recorder.SpansNamed("got").at(0);
        const auto no_block = recorder.SpansNamed("no-block").at(0);
        // Of the start block's attributes and the span's own, in any order.
        auto sorted = [](prism::tracing::Attributes a) {
          std::sort(a.begin(), a.end(),
                    [](const auto& x, const auto& y) { return x.key.view() < y.key.view(); });
          return Keys(a);
        };
        EXPECT_EQ(sorted(got.AllAttributes()), sorted(want.AllAttributes()));
        const prism::tracing::Attributes want_own(want.attributes.begin() + start->size(),
                                                  want.attributes.end());
        EXPECT_EQ(Keys(no_block.attributes), Keys(want_own));
        EXPECT_EQ(got.status, want.status);
        EXPECT_EQ(got.status_message, want.status_message);
      }
    }
  }
}

}  // namespace
}  // namespace prism::grpc_tracing
