// prism-plugin-sqlite: in process (exact span trees with the in-memory
// recorder, deadlines with a held pool) and as a child process over a Unix
// socket (the trace file; startup failure; the OpenTelemetry JS client).
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "prism/grpc_tracing/client.h"
#include "prism/tracing/in_memory_recorder.h"
#include "sqlite_service.h"
#include "testing.h"
#include "traced_server.h"

namespace prism::sqlite {
namespace {

using namespace std::chrono_literals;
namespace pt = prism::plugin::testing;
using prism::tracing::SpanData;
using prism::tracing::SpanKind;
using prism::tracing::StatusCode;

using pt::AttrInt;
using pt::AttrStr;

// The sqlite service in this process behind a real Unix socket, traced by
// the interceptors into an in-memory recorder (plugin_core's TracedKvServer).
class InProcess : public ::testing::Test {
 protected:
  void SetUp() override { Start(4); }

  void Start(int pool_size) {
    dir_ = pt::MakeTempDir("prism-sqlite-");
    SqliteOptions o;
    o.data_dir = dir_ + "/data";
    o.pool_size = pool_size;
    o.tracer = kv_.Tracer("prism.plugin.sqlite");
    auto service = SqliteService::Open(o);
    ASSERT_TRUE(service.ok()) << service.status();
    service_ = std::move(*service);
    ASSERT_TRUE(kv_.Start(service_.get(), dir_));
  }

  void TearDown() override { kv_.Stop(); }

  std::vector<SpanData> WaitSpans(size_t n) { return kv_.WaitSpans(n); }

  pt::TracedKvServer kv_;
  prism::tracing::InMemorySpanRecorder& recorder_ = kv_.recorder;
  prism::tracing::Tracer& tracer_ = kv_.client_tracer;
  std::unique_ptr<grpc::Server>& server_ = kv_.server;
  std::unique_ptr<prism::v1::KeyValue::Stub>& stub_ = kv_.stub;
  std::string dir_;
  std::unique_ptr<SqliteService> service_;
};

TEST_F(InProcess, GetIsOneTraceClientServerPoolStatement) {
  {
    grpc::ClientContext ctx;
    prism::v1::SetRequest req;
    req.set_namespace_("ns");
    req.set_key("k");
    req.set_value("v");
    prism::v1::SetResponse resp;
    ASSERT_TRUE(stub_->Set(&ctx, req, &resp).ok());
  }
  WaitSpans(4);
  recorder_.Clear();
  auto root = tracer_.StartSpan("root");
  {
    prism::tracing::Scope scope(root);
    grpc::ClientContext ctx;
    prism::v1::GetRequest req;
    req.set_namespace_("ns");
    req.set_key("k");
    prism::v1::GetResponse resp;
    ASSERT_TRUE(stub_->Get(&ctx, req, &resp).ok());
    EXPECT_TRUE(resp.found());
    EXPECT_EQ(resp.value(), "v");
  }
  auto spans = WaitSpans(4);
  ASSERT_EQ(spans.size(), 4u);
  const SpanData *client = nullptr, *server = nullptr, *pool = nullptr, *stmt = nullptr;
  for (const auto& s : spans) {
    if (s.kind == SpanKind::kClient && s.name == "prism.v1.KeyValue/Get") client = &s;
    if (s.kind == SpanKind::kServer) server = &s;
    if (s.name == "pool.acquire") pool = &s;
    if (s.name == "SELECT kv") stmt = &s;
  }
  ASSERT_TRUE(client && server && pool && stmt);
  const auto& trace = root.context().trace_id();
  for (const SpanData* s : {client, server, pool, stmt}) EXPECT_EQ(s->context.trace_id(), trace);
  EXPECT_EQ(client->parent_span_id, root.context().span_id());
  EXPECT_EQ(server->parent_span_id, client->context.span_id());
  EXPECT_EQ(pool->parent_span_id, server->context.span_id());
  EXPECT_EQ(stmt->parent_span_id, server->context.span_id());
  EXPECT_EQ(pool->kind, SpanKind::kInternal);
  EXPECT_EQ(AttrStr(*pool, "db.client.connection.pool.name"), "sqlite");
  EXPECT_GE(AttrInt(*pool, "prism.pool.wait_us"), 0);
  EXPECT_EQ(stmt->kind, SpanKind::kClient);
  EXPECT_EQ(AttrStr(*stmt, "db.system.name"), "sqlite");
  EXPECT_EQ(AttrStr(*stmt, "db.operation.name"), "SELECT");
  EXPECT_EQ(AttrStr(*stmt, "db.collection.name"), "kv");
  EXPECT_EQ(AttrStr(*stmt, "db.namespace"), dir_ + "/data/prism.db");
  EXPECT_EQ(AttrStr(*stmt, "db.query.text"), "SELECT value FROM kv WHERE ns = ? AND key = ?");
  EXPECT_EQ(AttrInt(*stmt, "db.response.returned_rows"), 1);
  EXPECT_EQ(AttrStr(*server, "server.address"), dir_ + "/s.sock");
  EXPECT_EQ(AttrStr(*server, "rpc.method"), "Get");
  // The values never reach the spans.
  for (const auto& s : spans) {
    for (const auto& kv : s.attributes) {
      if (auto* str = std::get_if<std::string>(&kv.value)) {
        EXPECT_NE(*str, "v") << kv.key;
      }
    }
  }
}

TEST_F(InProcess, AllSevenMethods) {
  // An empty value is a value.
  pt::ExpectKeyValueMethods(*stub_, "ns", {{"a", "val-a"}, {"b", ""}, {"c", "val-c"}});

  auto spans = WaitSpans(recorder_.size());
  bool saw_batch = false;
  for (const auto& s : spans) {
    if (s.name == "BATCH INSERT kv") {
      saw_batch = true;
      EXPECT_EQ(AttrInt(s, "db.operation.batch.size"), 3);
    }
  }
  EXPECT_TRUE(saw_batch);
}

TEST_F(InProcess, InvalidRequestIsRejectedBeforeTheDatabase) {
  grpc::ClientContext ctx;
  prism::v1::SetRequest req;
  req.set_namespace_("ns");
  req.set_key(std::string(5000, 'k'));
  prism::v1::SetResponse resp;
  grpc::Status st = stub_->Set(&ctx, req, &resp);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(st.error_message(), "key is 5000 bytes; the limit is 4096");
  auto spans = WaitSpans(2);
  ASSERT_EQ(spans.size(), 2u);  // client + server; no pool, no statement
  for (const auto& s : spans) {
    EXPECT_EQ(AttrInt(s, "rpc.grpc.status_code"), 3);
    if (s.kind == SpanKind::kClient) {
      EXPECT_EQ(s.status, StatusCode::kError);
      EXPECT_EQ(s.status_message, "key is 5000 bytes; the limit is 4096");
    }
  }
}

// All connections busy past the deadline: DEADLINE_EXCEEDED, and the
// server and pool.acquire spans are errors.
TEST_F(InProcess, DeadlineExceededWhileWaitingForAConnection) {
  server_->Shutdown();
  server_.reset();
  service_.reset();
  recorder_.Clear();
  Start(1);
  auto held = service_->pool().Acquire({}, std::chrono::system_clock::now() + 10s);
  ASSERT_TRUE(held.ok());
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + 300ms);
  prism::v1::GetRequest req;
  req.set_namespace_("ns");
  req.set_key("k");
  prism::v1::GetResponse resp;
  grpc::Status st = stub_->Get(&ctx, req, &resp);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);
  auto spans = WaitSpans(3);
  const SpanData *server = nullptr, *pool = nullptr, *client = nullptr;
  for (const auto& s : spans) {
    if (s.kind == SpanKind::kServer) server = &s;
    if (s.kind == SpanKind::kClient) client = &s;
    if (s.name == "pool.acquire") pool = &s;
  }
  ASSERT_TRUE(server && pool && client);
  EXPECT_EQ(client->status, StatusCode::kError);
  EXPECT_EQ(server->status, StatusCode::kError);
  EXPECT_EQ(AttrInt(*server, "rpc.grpc.status_code"), 4);
  EXPECT_EQ(pool->status, StatusCode::kError);
  EXPECT_EQ(pool->parent_span_id, server->context.span_id());
  EXPECT_NE(pool->status_message.find("pool 'sqlite'"), std::string::npos);
}

TEST(ChildProcess, SpansInTheTraceFileFormOneTrace) {
  std::string dir = pt::MakeTempDir("prism-sqlite-");
  std::string target = "unix://" + dir + "/sqlite.sock";
  std::string trace_file = dir + "/traces.jsonl";
  pt::ChildProcess p(PRISM_SQLITE_PLUGIN,
                     {"--data-dir", dir + "/data", "--pool-size", "2", "--listen", target},
                     {"OTEL_TRACES_EXPORTER=file", "PRISM_TRACE_FILE=" + trace_file,
                      "OTEL_SERVICE_NAME=", "OTEL_TRACES_SAMPLER=parentbased_always_on"},
                     dir + "/stderr");
  ASSERT_TRUE(pt::WaitServing(target, 20s)) << pt::ReadFile(dir + "/stderr");
  // The socket is only for its owner's eyes when the directory is private;
  // the plugin itself does not widen it.
  prism::tracing::InMemorySpanRecorder recorder;
  prism::tracing::TracerProviderOptions po;
  po.processors.push_back(recorder.MakeProcessor());
  prism::tracing::TracerProvider provider(std::move(po));
  std::vector<std::unique_ptr<grpc::experimental::ClientInterceptorFactoryInterface>> cf;
  prism::grpc_tracing::ClientTracingOptions co;
  co.target = target;
  co.tracer = provider.GetTracer("test");
  cf.push_back(prism::grpc_tracing::MakeClientInterceptorFactory(co));
  auto stub = prism::v1::KeyValue::NewStub(grpc::experimental::CreateCustomChannelWithInterceptors(
      target, grpc::InsecureChannelCredentials(), grpc::ChannelArguments(), std::move(cf)));
  {
    grpc::ClientContext ctx;
    prism::v1::SetRequest req;
    req.set_namespace_("ns");
    req.set_key("k");
    req.set_value("secret-value");
    prism::v1::SetResponse resp;
    ASSERT_TRUE(stub->Set(&ctx, req, &resp).ok());
  }
  p.Signal(SIGTERM);
  ASSERT_EQ(p.Wait(20s), 0) << pt::ReadFile(dir + "/stderr");
  auto client_spans = recorder.spans();
  ASSERT_EQ(client_spans.size(), 1u);
  const auto& client = client_spans[0];
  auto spans = pt::ReadTraceFile(trace_file);
  const pt::JsonSpan* server = pt::FindSpan(spans, "prism.v1.KeyValue/Set");
  const pt::JsonSpan* pool = pt::FindSpan(spans, "pool.acquire");
  const pt::JsonSpan* stmt = pt::FindSpan(spans, "INSERT kv");
  ASSERT_TRUE(server && pool && stmt) << pt::ReadFile(trace_file);
  std::string trace = client.context.trace_id().ToHex();
  EXPECT_EQ(server->trace_id, trace);
  EXPECT_EQ(server->parent_span_id, client.context.span_id().ToHex());
  EXPECT_EQ(server->kind, 2);
  EXPECT_EQ(server->service_name, "prism-plugin-sqlite");
  EXPECT_EQ(pool->trace_id, trace);
  EXPECT_EQ(pool->parent_span_id, server->span_id);
  EXPECT_EQ(stmt->trace_id, trace);
  EXPECT_EQ(stmt->parent_span_id, server->span_id);
  EXPECT_EQ(stmt->kind, 3);
  EXPECT_EQ(stmt->attrs.at("db.system.name"), "sqlite");
  EXPECT_EQ(stmt->attrs.at("db.operation.name"), "INSERT");
  EXPECT_EQ(stmt->attrs.at("db.query.text"), sql::kSet);
  EXPECT_EQ(pt::ReadFile(trace_file).find("secret-value"), std::string::npos);
}

TEST(ChildProcess, UnopenableDatabaseExitsWithAClearError) {
  std::string dir = pt::MakeTempDir("prism-sqlite-");
  mkdir((dir + "/data").c_str(), 0700);
  {
    std::ofstream garbage(dir + "/data/prism.db");
    garbage << std::string(4096, 'x');
  }
  std::string trace_file = dir + "/traces.jsonl";
  pt::ChildProcess p(
      PRISM_SQLITE_PLUGIN, {"--data-dir", dir + "/data", "--listen", "unix://" + dir + "/s.sock"},
      {"OTEL_TRACES_EXPORTER=file", "PRISM_TRACE_FILE=" + trace_file}, dir + "/stderr");
  EXPECT_EQ(p.Wait(10s), 1);
  std::string err = pt::ReadFile(dir + "/stderr");
  EXPECT_NE(err.find("cannot open database '" + dir + "/data/prism.db': file is not a database"),
            std::string::npos)
      << err;
  auto spans = pt::ReadTraceFile(trace_file);
  const pt::JsonSpan* start = pt::FindSpan(spans, "prism.plugin.start");
  ASSERT_TRUE(start);
  EXPECT_EQ(start->status_code, 2);
  EXPECT_NE(start->status_message.find("file is not a database"), std::string::npos);

  // A data directory that cannot be created.
  pt::ChildProcess q(
      PRISM_SQLITE_PLUGIN,
      {"--data-dir", dir + "/data/prism.db/sub", "--listen", "unix://" + dir + "/s.sock"},
      {"OTEL_TRACES_EXPORTER=none"}, dir + "/stderr2");
  EXPECT_EQ(q.Wait(10s), 1);
  err = pt::ReadFile(dir + "/stderr2");
  EXPECT_NE(err.find("is not a directory"), std::string::npos) << err;
}

// Interop: a client written by others (grpc-js + the official OpenTelemetry
// JS SDK and its grpc instrumentation) calls the plugin; the plugin's SERVER
// spans are children of the JS CLIENT spans (ids compared, not names).
TEST(ChildProcess, OpenTelemetryJsClientIsTheParent) {
  std::string js_dir = PRISM_JS_GRPC_DIR;
  struct stat st;
  // The interop proof must not pass by skipping: missing peers are failures.
  ASSERT_EQ(stat((js_dir + "/node_modules/@opentelemetry/instrumentation-grpc").c_str(), &st), 0)
      << "run tools/js-grpc/install.sh (make interop-deps) first";
  ASSERT_EQ(system("command -v node >/dev/null 2>&1"), 0) << "node not found";
  std::string dir = pt::MakeTempDir("prism-sqlite-js-");
  std::string target = "unix://" + dir + "/sqlite.sock";
  std::string trace_file = dir + "/traces.jsonl";
  pt::ChildProcess p(PRISM_SQLITE_PLUGIN, {"--data-dir", dir + "/data", "--listen", target},
                     {"OTEL_TRACES_EXPORTER=file", "PRISM_TRACE_FILE=" + trace_file,
                      "OTEL_SERVICE_NAME=", "OTEL_TRACES_SAMPLER=parentbased_always_on"},
                     dir + "/stderr");
  ASSERT_TRUE(pt::WaitServing(target, 20s)) << pt::ReadFile(dir + "/stderr");
  std::string cmd = "node '" + js_dir + "/kv_client.js' '" + target +
                    "' 'Set={\"namespace\":\"ns\",\"key\":\"js\",\"value\":\"aGk=\"}' "
                    "'Get={\"namespace\":\"ns\",\"key\":\"js\"}' --proto-dir '" +
                    PRISM_PROTO_DIR + "' > '" + dir + "/js.json' 2> '" + dir + "/js.err'";
  ASSERT_EQ(system(cmd.c_str()), 0) << pt::ReadFile(dir + "/js.err");
  p.Signal(SIGTERM);
  ASSERT_EQ(p.Wait(20s), 0) << pt::ReadFile(dir + "/stderr");
  auto out = nlohmann::json::parse(pt::ReadFile(dir + "/js.json"), nullptr, false);
  ASSERT_FALSE(out.is_discarded()) << pt::ReadFile(dir + "/js.json");
  ASSERT_EQ(out["calls"].size(), 2u);
  EXPECT_EQ(out["calls"][1]["response"]["value"], "aGk=");  // base64 of "hi"
  auto spans = pt::ReadTraceFile(trace_file);
  for (const auto& call : out["calls"]) {
    EXPECT_EQ(call["code"], 0);
    std::string trace_id = call["trace_id"], span_id = call["span_id"];
    ASSERT_EQ(trace_id.size(), 32u);
    ASSERT_EQ(span_id.size(), 16u);
    std::string method = call["method"];
    const pt::JsonSpan* server = nullptr;
    for (const auto& s : spans) {
      if (s.kind == 2 && s.trace_id == trace_id) server = &s;
    }
    ASSERT_TRUE(server) << "no plugin SERVER span in trace " << trace_id;
    EXPECT_EQ(server->parent_span_id, span_id);
    EXPECT_EQ(server->attrs.at("rpc.method"), method);
    // ... and the plugin's own children hang under it.
    int children = 0;
    for (const auto& s : spans) children += s.parent_span_id == server->span_id;
    EXPECT_EQ(children, 2);  // pool.acquire + the statement
  }
}

}  // namespace
}  // namespace prism::sqlite
