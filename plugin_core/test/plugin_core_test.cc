#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <signal.h>

#include <atomic>
#include <thread>

#include "prism/grpc_tracing/client.h"
#include "prism/plugin/db_span.h"
#include "prism/plugin/pool.h"
#include "prism/plugin/serve.h"
#include "prism/plugin/validation.h"
#include "prism/tracing/in_memory_recorder.h"
#include "prism/v1/kv.grpc.pb.h"
#include "prism/v1/sampling.grpc.pb.h"
#include "testing.h"

namespace prism::plugin {
namespace {

using namespace std::chrono_literals;

PluginDefinition Def() {
  PluginDefinition d;
  d.name = "t";
  d.settings = {{"data-dir", "dir", ".", false}, {"pool-size", "n", "4", false}};
  return d;
}

absl::StatusOr<ServeOptions> Parse(std::vector<std::string> args) {
  std::vector<const char*> argv{"prog"};
  for (auto& a : args) argv.push_back(a.c_str());
  return ParseCommandLine(static_cast<int>(argv.size()), argv.data(), Def());
}

TEST(CommandLine, AcceptsTheProxyForm) {
  auto o = Parse({"--data-dir", "/d", "--listen", "unix:///tmp/x.sock"});
  ASSERT_TRUE(o.ok()) << o.status();
  EXPECT_EQ(o->listen, "unix:///tmp/x.sock");
  EXPECT_EQ(o->settings.Get("data-dir"), "/d");
  EXPECT_EQ(o->settings.Get("pool-size"), "4");  // default
  o = Parse({"--listen=127.0.0.1:0", "--setting", "pool-size=8", "--shutdown-timeout-ms", "5"});
  ASSERT_TRUE(o.ok()) << o.status();
  EXPECT_EQ(o->settings.Get("pool-size"), "8");
  EXPECT_EQ(o->shutdown_timeout_ms, 5);
}

TEST(CommandLine, RejectsBadFlagsWithAClearMessage) {
  auto o = Parse({});
  EXPECT_EQ(o.status().message(), "--listen is required");
  o = Parse({"--listen", "unix:///x", "--bogus", "1"});
  EXPECT_NE(o.status().message().find("unknown flag --bogus"), std::string::npos);
  o = Parse({"--listen"});
  EXPECT_EQ(o.status().message(), "--listen needs a value");
  o = Parse({"--listen", "nonsense"});
  EXPECT_NE(o.status().message().find("expected unix:///path or HOST:PORT"), std::string::npos);
  o = Parse({"--listen", "127.0.0.1:99999"});
  EXPECT_FALSE(o.ok());
  o = Parse({"--listen", "unix:///x", "stray"});
  EXPECT_EQ(o.status().message(), "unexpected argument 'stray'");
  o = Parse({"--listen", "unix:///x", "--setting", "nokey"});
  EXPECT_FALSE(o.ok());
  o = Parse({"--help"});
  EXPECT_EQ(o.status().code(), absl::StatusCode::kCancelled);
  EXPECT_NE(o.status().message().find("--pool-size"), std::string::npos);
  Settings s(std::map<std::string, std::string>{{"n", "x12"}});
  EXPECT_FALSE(s.GetInt("n", 0, 10).ok());
}

TEST(Validation, LimitsAndMessages) {
  prism::v1::GetRequest g;
  g.set_namespace_("ns");
  EXPECT_EQ(Validate(g).error_message(), "key must not be empty");
  EXPECT_EQ(Validate(g).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  g.set_key(std::string(kMaxKeyBytes, 'k'));
  EXPECT_TRUE(Validate(g).ok());
  g.set_key(std::string(kMaxKeyBytes + 1, 'k'));
  EXPECT_EQ(Validate(g).error_message(), "key is 4097 bytes; the limit is 4096");
  prism::v1::SetRequest s;
  s.set_key("k");
  EXPECT_EQ(Validate(s).error_message(), "namespace must not be empty");
  s.set_namespace_("ns");
  s.set_value(std::string(kMaxValueBytes + 1, 'v'));
  EXPECT_EQ(Validate(s).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  prism::v1::BatchGetRequest b;
  b.set_namespace_("ns");
  EXPECT_EQ(Validate(b).error_message(), "keys must not be empty");
  b.add_keys("a");
  b.add_keys("");
  EXPECT_EQ(Validate(b).error_message(), "keys[1] must not be empty");
  prism::v1::BatchSetRequest bs;
  bs.set_namespace_("ns");
  for (size_t i = 0; i <= kMaxBatchItems; ++i) bs.add_items()->set_key("k");
  EXPECT_EQ(Validate(bs).error_message(), "items has 1001 entries; the limit is 1000");
}

struct Recorder {
  prism::tracing::InMemorySpanRecorder recorder;
  std::shared_ptr<prism::tracing::TracerProvider> provider;
  prism::tracing::Tracer tracer;
  Recorder() {
    prism::tracing::TracerProviderOptions o;
    o.processors.push_back(recorder.MakeProcessor());
    provider = std::make_shared<prism::tracing::TracerProvider>(std::move(o));
    tracer = provider->GetTracer("test");
  }
};

TEST(Pool, AcquireIsASpanAndTimesOutAtTheDeadline) {
  Recorder r;
  std::vector<std::unique_ptr<int>> items;
  items.push_back(std::make_unique<int>(7));
  Pool<int> pool("p1", std::move(items), r.tracer);
  auto parent = r.tracer.StartSpan("parent");
  {
    auto lease = pool.Acquire(parent.context(), std::chrono::system_clock::now() + 1s);
    ASSERT_TRUE(lease.ok());
    EXPECT_EQ(**lease, 7);
    EXPECT_EQ(pool.idle(), 0u);
    auto second = pool.Acquire(parent.context(), std::chrono::system_clock::now() + 30ms);
    EXPECT_EQ(second.status().code(), absl::StatusCode::kDeadlineExceeded);
  }
  EXPECT_EQ(pool.idle(), 1u);
  auto spans = r.recorder.SpansNamed("pool.acquire");
  ASSERT_EQ(spans.size(), 2u);
  EXPECT_EQ(spans[0].parent_span_id, parent.context().span_id());
  EXPECT_EQ(spans[0].status, prism::tracing::StatusCode::kUnset);
  EXPECT_EQ(std::get<std::string>(*spans[0].FindAttribute("db.client.connection.pool.name")), "p1");
  EXPECT_EQ(spans[1].status, prism::tracing::StatusCode::kError);
  EXPECT_GE(std::get<int64_t>(*spans[1].FindAttribute("prism.pool.wait_us")), 25000);

  // A waiter is woken when a lease comes back.
  auto held = pool.Acquire({}, std::chrono::system_clock::now() + 1s);
  ASSERT_TRUE(held.ok());
  std::thread t([&] {
    std::this_thread::sleep_for(20ms);
    auto drop = std::move(*held);
  });
  auto woken = pool.Acquire({}, std::chrono::system_clock::now() + 2s);
  EXPECT_TRUE(woken.ok());
  t.join();
}

TEST(DbSpan, StableDatabaseConventions) {
  Recorder r;
  {
    DbOperation op;
    op.system = "sqlite";
    op.operation = "SELECT";
    op.collection = "kv";
    op.db_namespace = "/d/prism.db";
    op.query_text = "SELECT value FROM kv WHERE ns = ? AND key = ?";
    DbSpan s(r.tracer, {}, op);
    s.SetReturnedRows(1);
  }
  {
    DbOperation op;
    op.system = "postgresql";
    op.operation = "BATCH INSERT";
    op.collection = "kv";
    op.server_address = "db";
    op.server_port = 5433;
    op.batch_size = 3;
    DbSpan s(r.tracer, {}, op);
    s.SetError("23505", "duplicate key");
  }
  auto spans = r.recorder.spans();
  ASSERT_EQ(spans.size(), 2u);
  EXPECT_EQ(spans[0].name, "SELECT kv");
  EXPECT_EQ(spans[0].kind, prism::tracing::SpanKind::kClient);
  EXPECT_EQ(std::get<std::string>(*spans[0].FindAttribute("db.system.name")), "sqlite");
  EXPECT_EQ(std::get<std::string>(*spans[0].FindAttribute("db.query.text")),
            "SELECT value FROM kv WHERE ns = ? AND key = ?");
  EXPECT_EQ(std::get<int64_t>(*spans[0].FindAttribute("db.response.returned_rows")), 1);
  EXPECT_EQ(spans[1].name, "BATCH INSERT kv");
  EXPECT_EQ(std::get<int64_t>(*spans[1].FindAttribute("db.operation.batch.size")), 3);
  EXPECT_EQ(std::get<int64_t>(*spans[1].FindAttribute("server.port")), 5433);
  EXPECT_EQ(std::get<std::string>(*spans[1].FindAttribute("db.response.status_code")), "23505");
  EXPECT_EQ(spans[1].status, prism::tracing::StatusCode::kError);
  EXPECT_EQ(spans[1].status_message, "duplicate key");
}

TEST(Serve, BadFlagsExitWithCode2) {
  std::string dir = testing::MakeTempDir("prism-plugin-core-");
  testing::ChildProcess p(PRISM_SLOW_PLUGIN,
                          {"--listen", "unix://" + dir + "/s.sock", "--bogus", "1"}, {},
                          dir + "/stderr");
  EXPECT_EQ(p.Wait(10s), 2);
  std::string err = testing::ReadFile(dir + "/stderr");
  EXPECT_NE(err.find("prism-plugin-slow: unknown flag --bogus"), std::string::npos) << err;
  testing::ChildProcess q(PRISM_SLOW_PLUGIN,
                          {"--listen", "unix://" + dir + "/s.sock", "--delay-ms", "abc"},
                          {"OTEL_TRACES_EXPORTER=none"}, dir + "/stderr2");
  EXPECT_EQ(q.Wait(10s), 1);
  err = testing::ReadFile(dir + "/stderr2");
  EXPECT_NE(err.find("--delay-ms 'abc': expected an integer"), std::string::npos) << err;
}

// prism.v1.Sampling/Keep, served by every plugin: bad requests get
// INVALID_ARGUMENT with what is wrong; a good one is accepted by a plugin
// running adaptive sampling and ignored (accepted 0) by one that is not.
TEST(Serve, SamplingKeepValidatesAndReachesTheAdaptiveBuffer) {
  for (bool adaptive : {false, true}) {
    SCOPED_TRACE(adaptive ? "prism_adaptive" : "default sampler");
    std::string dir = testing::MakeTempDir("prism-plugin-core-");
    std::string target = "unix://" + dir + "/slow.sock";
    testing::ChildProcess p(
        PRISM_SLOW_PLUGIN, {"--listen", target},
        {"OTEL_TRACES_EXPORTER=none",
         std::string("OTEL_TRACES_SAMPLER=") + (adaptive ? "prism_adaptive" : "always_on")},
        dir + "/stderr");
    ASSERT_TRUE(testing::WaitServing(target, 20s)) << testing::ReadFile(dir + "/stderr");
    auto stub = prism::v1::Sampling::NewStub(
        grpc::CreateChannel(target, grpc::InsecureChannelCredentials()));
    auto keep = [&](const prism::v1::KeepRequest& req, prism::v1::KeepResponse* resp) {
      grpc::ClientContext ctx;
      ctx.set_deadline(std::chrono::system_clock::now() + 5s);
      return stub->Keep(&ctx, req, resp);
    };
    struct Bad {
      std::string trace_id, reason;
      int count;
      const char* message;
    } bad[] = {
        {std::string(15, 'x'), "error", 1, "trace_id must be 16 bytes"},
        {std::string(17, 'x'), "slow", 1, "trace_id must be 16 bytes"},
        {std::string(16, '\0'), "error", 1, "trace_id must not be all zero (an invalid trace id)"},
        {std::string(16, 'x'), "often", 1, "reason must be error, slow, ratio or parent"},
        {std::string(16, 'x'), "slow", 1001, "at most 1000 traces per Keep call"},
    };
    for (const auto& b : bad) {
      prism::v1::KeepRequest req;
      for (int i = 0; i < b.count; ++i) {
        auto* t = req.add_traces();
        t->set_trace_id(b.trace_id);
        t->set_reason(b.reason);
      }
      prism::v1::KeepResponse resp;
      grpc::Status st = keep(req, &resp);
      EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << b.message;
      EXPECT_EQ(st.error_message(), b.message);
    }
    prism::v1::KeepRequest good;
    for (int i = 0; i < 1000; ++i) {
      auto* t = good.add_traces();
      std::string id(16, '\0');
      id[0] = 1;  // never all zero
      id[15] = static_cast<char>(i & 0xff);
      id[14] = static_cast<char>(i >> 8);
      t->set_trace_id(id);
      t->set_reason(i % 2 ? "slow" : "error");
    }
    prism::v1::KeepResponse resp;
    grpc::Status st = keep(good, &resp);
    ASSERT_TRUE(st.ok()) << st.error_message();
    EXPECT_EQ(resp.accepted(), adaptive ? 1000u : 0u);
    // The counters, on SIGUSR1: the plugin now expects those traces' spans.
    p.Signal(SIGUSR1);
    std::string log;
    for (int i = 0; i < 100; ++i) {
      std::this_thread::sleep_for(20ms);
      log = testing::ReadFile(dir + "/stderr");
      if (log.find("adaptive sampling") != std::string::npos) break;
    }
    EXPECT_NE(log.find(adaptive ? "kept(parent=0 ratio=0 error=0 slow=0 trigger=1000)"
                                : "adaptive sampling is off"),
              std::string::npos)
        << log;
    p.Signal(SIGTERM);
    EXPECT_EQ(p.Wait(10s), 0);
  }
}

// N concurrent slow calls are in flight when SIGTERM arrives: every one
// completes OK, new calls are refused, the process exits 0 and its spans
// reach the trace file; the handler's log line carries the call's trace id.
TEST(Serve, SigtermDrainsInFlightCallsAndFlushesSpans) {
  std::string dir = testing::MakeTempDir("prism-plugin-core-");
  std::string target = "unix://" + dir + "/slow.sock";
  std::string trace_file = dir + "/traces.jsonl";
  testing::ChildProcess p(PRISM_SLOW_PLUGIN, {"--listen", target, "--delay-ms", "700"},
                          {"OTEL_TRACES_EXPORTER=file", "PRISM_TRACE_FILE=" + trace_file,
                           "OTEL_TRACES_SAMPLER=always_on", "OTEL_SERVICE_NAME="},
                          dir + "/stderr");
  ASSERT_TRUE(testing::WaitServing(target, 20s)) << testing::ReadFile(dir + "/stderr");

  Recorder r;
  std::vector<std::unique_ptr<grpc::experimental::ClientInterceptorFactoryInterface>> f;
  prism::grpc_tracing::ClientTracingOptions co;
  co.target = target;
  co.tracer = r.tracer;
  f.push_back(prism::grpc_tracing::MakeClientInterceptorFactory(co));
  auto stub = prism::v1::KeyValue::NewStub(grpc::experimental::CreateCustomChannelWithInterceptors(
      target, grpc::InsecureChannelCredentials(), grpc::ChannelArguments(), std::move(f)));

  constexpr int kCalls = 16;
  std::atomic<int> ok{0};
  std::vector<std::string> failures(kCalls);
  std::vector<std::thread> threads;
  for (int i = 0; i < kCalls; ++i) {
    threads.emplace_back([&, i] {
      grpc::ClientContext ctx;
      ctx.set_deadline(std::chrono::system_clock::now() + 20s);
      prism::v1::GetRequest req;
      req.set_namespace_("ns");
      req.set_key("k" + std::to_string(i));
      prism::v1::GetResponse resp;
      grpc::Status st = stub->Get(&ctx, req, &resp);
      if (st.ok() && resp.value() == req.key()) {
        ok++;
      } else {
        failures[i] = std::to_string(st.error_code()) + " " + st.error_message();
      }
    });
  }
  // Wait until all calls are inside the handler (each logs a line first).
  // Generous: under a parallel ctest on 2 cores, 16 connections plus the
  // server's thread growth have taken longer than 5 s.
  auto until = std::chrono::steady_clock::now() + 30s;
  size_t in_handler = 0;
  while (std::chrono::steady_clock::now() < until) {
    std::string err = testing::ReadFile(dir + "/stderr");
    in_handler = 0;
    for (size_t pos = 0; (pos = err.find("slow get of", pos)) != std::string::npos; ++pos) {
      in_handler++;
    }
    if (in_handler == kCalls) break;
    std::this_thread::sleep_for(10ms);
  }
  EXPECT_EQ(in_handler, static_cast<size_t>(kCalls)) << "calls inside the handler at SIGTERM";
  p.Signal(SIGTERM);
  for (auto& t : threads) t.join();
  EXPECT_EQ(ok.load(), kCalls);
  for (const auto& f : failures) EXPECT_EQ(f, "");
  EXPECT_EQ(p.Wait(15s), 0);

  std::string err = testing::ReadFile(dir + "/stderr");
  EXPECT_NE(err.find("received SIGTERM; draining"), std::string::npos) << err;
  auto spans = testing::ReadTraceFile(trace_file);
  int server_spans = 0;
  for (const auto& s : spans) {
    if (s.name == "prism.v1.KeyValue/Get" && s.kind == 2) {
      server_spans++;
      EXPECT_EQ(s.service_name, "prism-plugin-slow");
      EXPECT_EQ(s.attrs.at("rpc.grpc.status_code"), "0");
      // The handler's log line names this span.
      EXPECT_NE(err.find("trace_id=" + s.trace_id + " span_id=" + s.span_id), std::string::npos);
    }
  }
  EXPECT_EQ(server_spans, kCalls);
  // The client spans recorded here are the parents of the plugin's spans.
  auto client_spans = r.recorder.SpansNamed("prism.v1.KeyValue/Get");
  ASSERT_EQ(client_spans.size(), static_cast<size_t>(kCalls));
  for (const auto& c : client_spans) {
    bool matched = false;
    for (const auto& s : spans) {
      matched |= s.trace_id == c.context.trace_id().ToHex() &&
                 s.parent_span_id == c.context.span_id().ToHex();
    }
    EXPECT_TRUE(matched);
  }
}

}  // namespace
}  // namespace prism::plugin
