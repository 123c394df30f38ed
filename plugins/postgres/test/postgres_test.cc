// prism-plugin-postgres against a real PostgreSQL that this test binary
// starts itself (scripts/throwaway-postgres.sh via BackendServer: initdb in
// a temporary directory, 127.0.0.1 on a free port, destroyed afterwards and
// when the test process dies). In process (exact span trees with the
// in-memory recorder, a pool slot or a row lock held by the test) and as a
// child process (the trace file, startup failures).
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <libpq-fe.h>
#include <signal.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <random>
#include <regex>
#include <thread>

#include "backend_server.h"
#include "pg_service.h"
#include "prism/grpc_tracing/client.h"
#include "prism/grpc_tracing/server.h"
#include "prism/tracing/in_memory_recorder.h"
#include "prism/tracing/propagation.h"
#include "testing.h"

namespace prism::postgres {
namespace {

using namespace std::chrono_literals;
namespace pt = prism::plugin::testing;
using prism::tracing::SpanData;
using prism::tracing::SpanKind;
using prism::tracing::StatusCode;

std::string Str(const SpanData& s, std::string_view key) {
  const auto* v = s.FindAttribute(key);
  return v && std::holds_alternative<std::string>(*v) ? std::get<std::string>(*v) : "<none>";
}
int64_t Int(const SpanData& s, std::string_view key) {
  const auto* v = s.FindAttribute(key);
  return v && std::holds_alternative<int64_t>(*v) ? std::get<int64_t>(*v) : -1;
}
const SpanData* Named(const std::vector<SpanData>& spans, const std::string& name) {
  const SpanData* found = nullptr;
  for (const auto& s : spans) {
    if (s.name == name) found = &s;
  }
  return found;
}

std::unique_ptr<pt::BackendServer> StartPostgres() {
  auto pg = pt::BackendServer::Start(PRISM_THROWAWAY_POSTGRES, {"--log-statements"});
  EXPECT_TRUE(pg.ok()) << pg.status();
  return pg.ok() ? std::move(*pg) : nullptr;
}

// One server for the whole binary (initdb costs a second or two).
pt::BackendServer* g_pg = nullptr;
class PostgresEnvironment : public ::testing::Environment {
 public:
  void SetUp() override {
    server_ = StartPostgres();
    g_pg = server_.get();
    ASSERT_NE(g_pg, nullptr);
  }
  void TearDown() override {
    g_pg = nullptr;
    server_.reset();
  }

 private:
  std::unique_ptr<pt::BackendServer> server_;
};
const auto* const kEnv = ::testing::AddGlobalTestEnvironment(new PostgresEnvironment);

// A plain libpq session of the test's own (locks, pg_stat_activity).
class Session {
 public:
  explicit Session(const std::string& conninfo) : c_(PQconnectdb(conninfo.c_str())) {
    EXPECT_EQ(PQstatus(c_), CONNECTION_OK) << PQerrorMessage(c_);
  }
  ~Session() { PQfinish(c_); }
  // Runs `sql`; returns the first column of the first row ("" when none).
  std::string Exec(const std::string& sql) {
    PGresult* r = PQexec(c_, sql.c_str());
    EXPECT_TRUE(PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK)
        << sql << ": " << PQerrorMessage(c_);
    std::string out = PQntuples(r) > 0 ? std::string(PQgetvalue(r, 0, 0)) : "";
    PQclear(r);
    return out;
  }

 private:
  PGconn* c_;
};

class InProcess : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_NE(g_pg, nullptr);
    table_ = "t_" + std::string(::testing::UnitTest::GetInstance()->current_test_info()->name());
    for (auto& ch : table_) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    Start(g_pg->Get("CONNINFO"), 4);
  }

  void Start(const std::string& conninfo, int pool_size, int acquire_timeout_ms = 5000) {
    prism::grpc_tracing::InstallSyncHandlerScopes();
    prism::tracing::TracerProviderOptions po;
    po.processors.push_back(recorder_.MakeProcessor());
    provider_ = std::make_shared<prism::tracing::TracerProvider>(std::move(po));
    tracer_ = provider_->GetTracer("test");
    dir_ = pt::MakeTempDir("prism-pg-test-");
    PgOptions o;
    o.conninfo = conninfo;
    o.table = table_;
    o.pool_size = pool_size;
    o.acquire_timeout_ms = acquire_timeout_ms;
    o.connect_timeout_ms = 2000;
    o.tracer = provider_->GetTracer("prism.plugin.postgres");
    auto service = PgService::Open(o);
    ASSERT_TRUE(service.ok()) << service.status();
    service_ = std::move(*service);
    target_ = "unix://" + dir_ + "/s.sock";
    grpc::ServerBuilder b;
    b.AddListeningPort(target_, grpc::InsecureServerCredentials());
    b.RegisterService(service_.get());
    prism::grpc_tracing::ServerTracingOptions so;
    so.server_address = dir_ + "/s.sock";
    so.tracer = provider_->GetTracer("prism.grpc_tracing");
    std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>> sf;
    sf.push_back(prism::grpc_tracing::MakeServerInterceptorFactory(so));
    b.experimental().SetInterceptorCreators(std::move(sf));
    server_ = b.BuildAndStart();
    ASSERT_TRUE(server_);
    std::vector<std::unique_ptr<grpc::experimental::ClientInterceptorFactoryInterface>> cf;
    prism::grpc_tracing::ClientTracingOptions co;
    co.target = target_;
    co.tracer = tracer_;
    cf.push_back(prism::grpc_tracing::MakeClientInterceptorFactory(co));
    stub_ = prism::v1::KeyValue::NewStub(grpc::experimental::CreateCustomChannelWithInterceptors(
        target_, grpc::InsecureChannelCredentials(), grpc::ChannelArguments(), std::move(cf)));
  }

  void Restart(const std::string& conninfo, int pool_size, int acquire_timeout_ms = 5000) {
    server_->Shutdown();
    server_.reset();
    service_.reset();
    recorder_.Clear();
    Start(conninfo, pool_size, acquire_timeout_ms);
  }

  void TearDown() override {
    if (server_) server_->Shutdown();
    if (!HasFailure()) std::filesystem::remove_all(dir_);
  }

  std::vector<SpanData> WaitSpans(size_t n) {
    for (int i = 0; i < 400 && recorder_.size() < n; ++i) std::this_thread::sleep_for(5ms);
    return recorder_.spans();
  }

  grpc::Status Set(const std::string& key, const std::string& value,
                   std::chrono::milliseconds deadline = 5s) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + deadline);
    prism::v1::SetRequest req;
    req.set_namespace_("ns");
    req.set_key(key);
    req.set_value(value);
    prism::v1::SetResponse resp;
    return stub_->Set(&ctx, req, &resp);
  }
  grpc::Status Get(const std::string& key, prism::v1::GetResponse* resp,
                   std::chrono::milliseconds deadline = 5s) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + deadline);
    prism::v1::GetRequest req;
    req.set_namespace_("ns");
    req.set_key(key);
    return stub_->Get(&ctx, req, resp);
  }

  // The server log since the test binary started it.
  std::string ServerLog() { return pt::ReadFile(g_pg->Get("LOG")); }

  prism::tracing::InMemorySpanRecorder recorder_;
  std::shared_ptr<prism::tracing::TracerProvider> provider_;
  prism::tracing::Tracer tracer_;
  std::string dir_, target_, table_;
  std::unique_ptr<PgService> service_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<prism::v1::KeyValue::Stub> stub_;
};

std::string AllBytes() {
  std::string s;
  for (int i = 0; i < 256; ++i) s.push_back(static_cast<char>(i));
  return s;
}

TEST_F(InProcess, AllSevenMethodsBinaryValuesByteExact) {
  auto ctx = [] {
    auto c = std::make_unique<grpc::ClientContext>();
    c->set_deadline(std::chrono::system_clock::now() + 5s);
    return c;
  };
  std::mt19937 rng(7);
  std::string big(1 << 20, '\0');
  for (auto& ch : big) ch = static_cast<char>(rng());
  prism::v1::BatchSetRequest bset;
  bset.set_namespace_("ns");
  const std::vector<std::pair<std::string, std::string>> items = {
      {"a", AllBytes()}, {"b", ""}, {"c", big}, {"caf\xc3\xa9", "\xff\x00\xfe"}};
  for (const auto& [k, v] : items) {
    auto* it = bset.add_items();
    it->set_key(k);
    it->set_value(v);
  }
  prism::v1::BatchSetResponse bset_resp;
  ASSERT_TRUE(stub_->BatchSet(ctx().get(), bset, &bset_resp).ok());

  prism::v1::BatchGetRequest bget;
  bget.set_namespace_("ns");
  for (const auto& kv : items) bget.add_keys(kv.first);
  bget.add_keys("missing");
  prism::v1::BatchGetResponse bget_resp;
  auto st = stub_->BatchGet(ctx().get(), bget, &bget_resp);
  ASSERT_TRUE(st.ok()) << st.error_message();
  ASSERT_EQ(bget_resp.results_size(), 5);
  for (size_t i = 0; i < items.size(); ++i) {
    EXPECT_TRUE(bget_resp.results(i).found()) << i;
    EXPECT_EQ(bget_resp.results(i).value(), items[i].second) << i;  // byte-exact
  }
  EXPECT_FALSE(bget_resp.results(4).found());

  prism::v1::ExistsRequest ex;
  ex.set_namespace_("other");
  ex.set_key("a");
  prism::v1::ExistsResponse ex_resp;
  ASSERT_TRUE(stub_->Exists(ctx().get(), ex, &ex_resp).ok());
  EXPECT_FALSE(ex_resp.exists());  // namespaces are separate key spaces
  ex.set_namespace_("ns");
  ASSERT_TRUE(stub_->Exists(ctx().get(), ex, &ex_resp).ok());
  EXPECT_TRUE(ex_resp.exists());

  // Set is an upsert.
  ASSERT_TRUE(Set("a", std::string("new\0bytes", 9)).ok());
  prism::v1::GetResponse get_resp;
  ASSERT_TRUE(Get("a", &get_resp).ok());
  EXPECT_TRUE(get_resp.found());
  EXPECT_EQ(get_resp.value(), std::string("new\0bytes", 9));
  ASSERT_TRUE(Get("b", &get_resp).ok());
  EXPECT_TRUE(get_resp.found());
  EXPECT_EQ(get_resp.value(), "");

  prism::v1::DeleteRequest del;
  del.set_namespace_("ns");
  del.set_key("a");
  prism::v1::DeleteResponse del_resp;
  ASSERT_TRUE(stub_->Delete(ctx().get(), del, &del_resp).ok());
  EXPECT_TRUE(del_resp.deleted());
  ASSERT_TRUE(stub_->Delete(ctx().get(), del, &del_resp).ok());
  EXPECT_FALSE(del_resp.deleted());

  prism::v1::BatchDeleteRequest bdel;
  bdel.set_namespace_("ns");
  for (std::string k : {"a", "b", "c", "d"}) bdel.add_keys(k);
  prism::v1::BatchDeleteResponse bdel_resp;
  ASSERT_TRUE(stub_->BatchDelete(ctx().get(), bdel, &bdel_resp).ok());
  EXPECT_EQ(bdel_resp.deleted(), 2);

  // A batch is one transaction: one bad item and nothing is written.
  prism::v1::BatchSetRequest bad;
  bad.set_namespace_("ns");
  auto* ok_item = bad.add_items();
  ok_item->set_key("atomic-1");
  ok_item->set_value("v");
  auto* nul_item = bad.add_items();
  nul_item->set_key(std::string("nul\0key", 7));
  nul_item->set_value("v");
  st = stub_->BatchSet(ctx().get(), bad, &bset_resp);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << st.error_message();
  ASSERT_TRUE(Get("atomic-1", &get_resp).ok());
  EXPECT_FALSE(get_resp.found());

  auto spans = WaitSpans(recorder_.size());
  const SpanData* batch = Named(spans, "BATCH INSERT " + table_);
  ASSERT_NE(batch, nullptr);
  EXPECT_EQ(Int(*batch, "db.operation.batch.size"), 2);
}

// The span tree, the stable DB attributes, and the statement span's own
// traceparent in PostgreSQL's log of the statement.
TEST_F(InProcess, SpanTreeAndTraceparentInTheServerLog) {
  ASSERT_TRUE(Set("k", "secret-value").ok());
  WaitSpans(4);
  recorder_.Clear();
  auto root = tracer_.StartSpan("root");
  {
    prism::tracing::Scope scope(root);
    prism::v1::GetResponse resp;
    ASSERT_TRUE(Get("k", &resp).ok());
    EXPECT_EQ(resp.value(), "secret-value");
  }
  root.End();
  auto spans = WaitSpans(5);
  const SpanData *client = nullptr, *server = nullptr, *pool = nullptr, *stmt = nullptr;
  for (const auto& s : spans) {
    if (s.kind == SpanKind::kClient && s.name == "prism.v1.KeyValue/Get") client = &s;
    if (s.kind == SpanKind::kServer) server = &s;
    if (s.name == "pool.acquire") pool = &s;
    if (s.name == "SELECT " + table_) stmt = &s;
  }
  ASSERT_TRUE(client && server && pool && stmt);
  const auto& trace = root.context().trace_id();
  for (const SpanData* s : {client, server, pool, stmt}) EXPECT_EQ(s->context.trace_id(), trace);
  EXPECT_EQ(client->parent_span_id, root.context().span_id());
  EXPECT_EQ(server->parent_span_id, client->context.span_id());
  EXPECT_EQ(pool->parent_span_id, server->context.span_id());
  EXPECT_EQ(stmt->parent_span_id, server->context.span_id());
  EXPECT_EQ(Str(*pool, "db.client.connection.pool.name"), "postgres");
  EXPECT_EQ(stmt->kind, SpanKind::kClient);
  EXPECT_EQ(Str(*stmt, "db.system.name"), "postgresql");
  EXPECT_EQ(Str(*stmt, "db.operation.name"), "SELECT");
  EXPECT_EQ(Str(*stmt, "db.collection.name"), table_);
  EXPECT_EQ(Str(*stmt, "db.namespace"), "postgres|public");
  EXPECT_EQ(Str(*stmt, "db.query.text"),
            "SELECT value FROM " + table_ + " WHERE ns = $1 AND key = $2");
  EXPECT_EQ(Str(*stmt, "server.address"), "127.0.0.1");
  EXPECT_EQ(Int(*stmt, "server.port"), std::stoi(g_pg->Get("PGPORT")));
  EXPECT_EQ(Int(*stmt, "db.response.returned_rows"), 1);
  for (const auto& s : spans) {
    for (const auto& kv : s.attributes) {
      if (auto* str = std::get_if<std::string>(&kv.value)) {
        EXPECT_EQ(str->find("secret-value"), std::string::npos) << kv.key;
      }
    }
  }
  // PostgreSQL logged the statement with the statement span's traceparent.
  std::string tp = prism::tracing::w3c::FormatTraceparent(stmt->context);
  std::string expected = "execute <unnamed>: SELECT value FROM " + table_ +
                         " WHERE ns = $1 AND key = $2 /*traceparent='" + tp + "'*/";
  std::string log;
  for (int i = 0; i < 100; ++i) {
    log = ServerLog();
    if (log.find(expected) != std::string::npos) break;
    std::this_thread::sleep_for(20ms);
  }
  EXPECT_NE(log.find(expected), std::string::npos) << expected;
  EXPECT_EQ(tp.substr(36, 16), stmt->context.span_id().ToHex());
}

// A statement made slow by a row lock the test holds: the statement span
// takes the time (not the pool), and pg_stat_activity shows the waiting
// statement with its span's traceparent.
TEST_F(InProcess, SlowStatementIsTheStatementSpanAndVisibleInPgStatActivity) {
  ASSERT_TRUE(Set("hot", "v0").ok());
  Session lock(g_pg->Get("CONNINFO"));
  lock.Exec("BEGIN");
  lock.Exec("SELECT value FROM " + table_ + " WHERE ns = 'ns' AND key = 'hot' FOR UPDATE");
  recorder_.Clear();
  // A caller's tracestate that would push the comment past
  // pg_stat_activity's 1024 bytes: it is left out, the traceparent stays,
  // and the comment PostgreSQL shows is whole.
  auto remote = prism::tracing::w3c::ParseTraceparent(
      "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
      "a=" + std::string(200, '*') + ",b=" + std::string(200, '*'));
  ASSERT_TRUE(remote);
  prism::tracing::StartSpanOptions o;
  o.parent = *remote;
  auto root = tracer_.StartSpan("root", std::move(o));
  std::thread writer([&] {
    prism::tracing::Scope scope(root);
    EXPECT_TRUE(Set("hot", "v1").ok());
  });
  Session watch(g_pg->Get("CONNINFO"));
  std::string seen;
  for (int i = 0; i < 200 && seen.empty(); ++i) {
    seen = watch.Exec(
        "SELECT query FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE "
        "'%traceparent=%'");
    if (seen.empty()) std::this_thread::sleep_for(10ms);
  }
  std::this_thread::sleep_for(300ms);
  lock.Exec("COMMIT");
  writer.join();
  auto spans = WaitSpans(3);
  const SpanData* stmt = Named(spans, "INSERT " + table_);
  const SpanData* pool = Named(spans, "pool.acquire");
  ASSERT_TRUE(stmt && pool);
  EXPECT_GE(stmt->end_unix_nano - stmt->start_unix_nano, 300'000'000u);
  EXPECT_LT(Int(*pool, "prism.pool.wait_us"), 100'000);
  std::string tp = prism::tracing::w3c::FormatTraceparent(stmt->context);
  EXPECT_EQ(seen, service_->sql(PgService::kSet) + " /*traceparent='" + tp + "'*/");
  EXPECT_LE(seen.size(), 1023u);
  root.End();
}

// What PostgreSQL refuses is INVALID_ARGUMENT with its reason, and the
// statement span records the SQLSTATE.
TEST_F(InProcess, RefusedTextIsInvalidArgumentWithTheSqlstate) {
  grpc::Status st = Set(std::string("nul\0key", 7), "v");
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(st.error_message().find("invalid byte sequence for encoding \"UTF8\": 0x00"),
            std::string::npos)
      << st.error_message();
  EXPECT_NE(st.error_message().find("(SQLSTATE 22021)"), std::string::npos);
  // A key PostgreSQL's index cannot hold (within the API's 4 KiB limit).
  std::mt19937 rng(1);
  std::string key(4000, 'x');
  for (auto& ch : key) ch = static_cast<char>('a' + rng() % 26);
  st = Set(key, "v");
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << st.error_message();
  EXPECT_NE(st.error_message().find("(SQLSTATE 54000)"), std::string::npos) << st.error_message();
  auto spans = WaitSpans(6);
  const SpanData* stmt = nullptr;
  for (const auto& s : spans) {
    if (s.name == "INSERT " + table_ && Str(s, "db.response.status_code") == "22021") stmt = &s;
  }
  ASSERT_NE(stmt, nullptr);
  EXPECT_EQ(stmt->status, StatusCode::kError);
  EXPECT_EQ(Str(*stmt, "error.type"), "22021");
  // The connection is still good.
  EXPECT_TRUE(Set("fine", "v").ok());
}

// The deadline reaches the server as statement_timeout: a statement stuck
// on a lock ends at the deadline with DEADLINE_EXCEEDED, and the
// connection is good afterwards.
TEST_F(InProcess, DeadlineEndsAStuckStatement) {
  Restart(g_pg->Get("CONNINFO"), 1);
  ASSERT_TRUE(Set("hot", "v0").ok());
  Session lock(g_pg->Get("CONNINFO"));
  lock.Exec("BEGIN");
  lock.Exec("SELECT value FROM " + table_ + " WHERE ns = 'ns' AND key = 'hot' FOR UPDATE");
  auto t0 = std::chrono::steady_clock::now();
  grpc::Status st = Set("hot", "v1", 400ms);
  auto took = std::chrono::steady_clock::now() - t0;
  EXPECT_EQ(st.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED) << st.error_message();
  EXPECT_LT(took, 900ms);
  // The plugin's own answer (not only the client's timer): the statement
  // span ended with the server's cancel, SQLSTATE 57014.
  bool canceled = false;
  for (int i = 0; i < 100 && !canceled; ++i) {
    for (const auto& s : recorder_.spans()) {
      canceled = canceled ||
                 (s.name == "INSERT " + table_ && Str(s, "db.response.status_code") == "57014");
    }
    if (!canceled) std::this_thread::sleep_for(10ms);
  }
  EXPECT_TRUE(canceled);
  lock.Exec("COMMIT");
  EXPECT_TRUE(Set("hot", "v2").ok());  // same (only) connection, still good
  prism::v1::GetResponse resp;
  ASSERT_TRUE(Get("hot", &resp).ok());
  EXPECT_EQ(resp.value(), "v2");
}

// Pool exhaustion: a call waits for a connection, pool.acquire shows the
// wait; past the deadline it is DEADLINE_EXCEEDED, past acquire-timeout-ms
// UNAVAILABLE.
TEST_F(InProcess, PoolExhaustionWaitsAndHonoursDeadlines) {
  Restart(g_pg->Get("CONNINFO"), 1, 1000);
  using Lease = prism::plugin::Pool<PgConn>::Lease;
  auto held = std::make_unique<Lease>(
      std::move(*service_->pool().Acquire({}, std::chrono::system_clock::now() + 10s)));
  auto t0 = std::chrono::steady_clock::now();
  grpc::Status st = Set("k", "v", 300ms);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 700ms);
  st = Set("k", "v", 5s);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_NE(st.error_message().find("acquire-timeout-ms 1000"), std::string::npos)
      << st.error_message();
  auto spans = WaitSpans(5);
  int errors = 0;
  for (const auto& s : spans) {
    if (s.name == "pool.acquire" && s.status == StatusCode::kError) {
      EXPECT_GE(Int(s, "prism.pool.wait_us"), 250'000);
      ++errors;
    }
  }
  EXPECT_EQ(errors, 2);
  recorder_.Clear();
  // Released while a call waits: the call gets the connection, and its
  // pool.acquire span shows the wait.
  std::thread release([&] {
    std::this_thread::sleep_for(300ms);
    held.reset();
  });
  st = Set("k", "v", 5s);
  release.join();
  EXPECT_TRUE(st.ok()) << st.error_message();
  spans = WaitSpans(3);
  const SpanData* pool = Named(spans, "pool.acquire");
  ASSERT_NE(pool, nullptr);
  EXPECT_EQ(pool->status, StatusCode::kUnset);
  EXPECT_GE(Int(*pool, "prism.pool.wait_us"), 250'000);
  EXPECT_GE(pool->end_unix_nano - pool->start_unix_nano, 250'000'000u);
}

// A server restart mid-run: calls fail with UNAVAILABLE (within their
// deadline) while it is down, succeed after, and no acknowledged write is
// lost. Its own server: it is stopped.
TEST_F(InProcess, ServerRestartMidRun) {
  auto pg = StartPostgres();
  ASSERT_NE(pg, nullptr);
  Restart(pg->Get("CONNINFO"), 2);
  std::atomic<bool> stop{false};
  std::atomic<int> ok{0}, unavailable{0}, other{0}, late{0};
  std::vector<std::string> acked;
  std::string other_msg;
  std::thread writer([&] {
    for (int i = 0; !stop; ++i) {
      std::string key = "w" + std::to_string(i);
      auto t0 = std::chrono::steady_clock::now();
      grpc::Status st = Set(key, "value-" + std::to_string(i), 1s);
      if (std::chrono::steady_clock::now() - t0 > 1200ms) ++late;
      if (st.ok()) {
        ++ok;
        acked.push_back(key);
      } else if (st.error_code() == grpc::StatusCode::UNAVAILABLE) {
        ++unavailable;
      } else {
        ++other;
        other_msg = std::to_string(st.error_code()) + " " + st.error_message();
      }
      std::this_thread::sleep_for(5ms);
    }
  });
  auto wait_ok = [&](int n) {
    int start = ok;
    for (int i = 0; i < 1000 && ok < start + n; ++i) std::this_thread::sleep_for(10ms);
    return ok >= start + n;
  };
  ASSERT_TRUE(wait_ok(20));
  ASSERT_TRUE(pg->Stop().ok());
  std::this_thread::sleep_for(700ms);
  int failed_while_down = unavailable;
  ASSERT_TRUE(pg->StartAgain().ok());
  EXPECT_TRUE(wait_ok(20));
  stop = true;
  writer.join();
  EXPECT_GT(failed_while_down, 3);
  EXPECT_EQ(other, 0) << other_msg;
  EXPECT_EQ(late, 0);
  // Every acknowledged write is there.
  Session check(pg->Get("CONNINFO"));
  EXPECT_EQ(check.Exec("SELECT count(*) FROM " + table_), std::to_string(acked.size()));
  for (size_t i = 0; i < acked.size(); i += 7) {
    prism::v1::GetResponse resp;
    ASSERT_TRUE(Get(acked[i], &resp).ok());
    EXPECT_TRUE(resp.found()) << acked[i];
  }
  // The failed reconnects are pool.connect spans under the calls' SERVER spans.
  {
    auto spans = recorder_.spans();
    const SpanData* connect = nullptr;
    for (const auto& s : spans) {
      if (s.name == "pool.connect" && s.status == StatusCode::kError) connect = &s;
    }
    ASSERT_NE(connect, nullptr);
    EXPECT_NE(connect->status_message.find("cannot connect to postgresql"), std::string::npos);
    bool parent_is_server = false;
    for (const auto& s : spans) {
      parent_is_server = parent_is_server || (s.kind == SpanKind::kServer &&
                                              s.context.span_id() == connect->parent_span_id);
    }
    EXPECT_TRUE(parent_is_server);
  }
  // UNAVAILABLE names the server and the reason.
  ASSERT_TRUE(pg->Stop().ok());
  grpc::Status st = Set("after", "v", 2s);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_NE(st.error_message().find("127.0.0.1"), std::string::npos) << st.error_message();
  server_->Shutdown();
  server_.reset();
  service_.reset();
}

// A caller's tracestate with everything a W3C tracestate value may hold
// that could end a comment or open a string: the statement runs unchanged
// and the log shows it encoded inside the comment.
TEST_F(InProcess, HostileTracestateStaysInTheComment) {
  auto remote = prism::tracing::w3c::ParseTraceparent(
      "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
      "evil=*/select pg_sleep(5)/*,q=x';drop table kv;--,b=\\");
  ASSERT_TRUE(remote);
  ASSERT_EQ(remote->trace_state().size(), 3u);
  prism::tracing::StartSpanOptions o;
  o.parent = *remote;
  auto root = tracer_.StartSpan("root", std::move(o));
  {
    prism::tracing::Scope scope(root);
    auto t0 = std::chrono::steady_clock::now();
    ASSERT_TRUE(Set("k*/", "v'--").ok());
    EXPECT_LT(std::chrono::steady_clock::now() - t0, 3s);  // no pg_sleep(5) ran
  }
  root.End();
  prism::v1::GetResponse resp;
  ASSERT_TRUE(Get("k*/", &resp).ok());
  EXPECT_EQ(resp.value(), "v'--");
  auto spans = WaitSpans(4);
  const SpanData* stmt = Named(spans, "INSERT " + table_);
  ASSERT_NE(stmt, nullptr);
  std::string tp = prism::tracing::w3c::FormatTraceparent(stmt->context);
  std::string expected = "/*traceparent='" + tp +
                         "',tracestate='evil%3D%2A%2Fselect%20pg_sleep%285%29%2F%2A%2Cq%3Dx%27%"
                         "3Bdrop%20table%20kv%3B--%2Cb%3D%5C'*/";
  std::string log;
  for (int i = 0; i < 100; ++i) {
    log = ServerLog();
    if (log.find(expected) != std::string::npos) break;
    std::this_thread::sleep_for(20ms);
  }
  EXPECT_NE(log.find(expected), std::string::npos) << expected;
  Session check(g_pg->Get("CONNINFO"));
  EXPECT_EQ(check.Exec("SELECT count(*) FROM " + table_), "1");
}

// Comment off: the prepared statements run, no comment reaches the server.
TEST_F(InProcess, CommentOffUsesPreparedStatements) {
  server_->Shutdown();
  server_.reset();
  PgOptions o;
  o.conninfo = g_pg->Get("CONNINFO");
  o.table = table_;
  o.sqlcommenter = false;
  o.tracer = provider_->GetTracer("prism.plugin.postgres");
  auto service = PgService::Open(o);
  ASSERT_TRUE(service.ok()) << service.status();
  grpc::ServerBuilder b;
  std::string target = "unix://" + dir_ + "/s2.sock";
  b.AddListeningPort(target, grpc::InsecureServerCredentials());
  b.RegisterService(service->get());
  auto server = b.BuildAndStart();
  auto stub =
      prism::v1::KeyValue::NewStub(grpc::CreateChannel(target, grpc::InsecureChannelCredentials()));
  grpc::ClientContext ctx;
  prism::v1::SetRequest req;
  req.set_namespace_("ns");
  req.set_key("plain-key-for-off");
  req.set_value("v");
  prism::v1::SetResponse resp;
  ASSERT_TRUE(stub->Set(&ctx, req, &resp).ok());
  server->Shutdown();
  std::string log;
  for (int i = 0; i < 50; ++i) {
    log = ServerLog();
    if (log.find("execute prism_set: INSERT INTO " + table_) != std::string::npos) break;
    std::this_thread::sleep_for(20ms);
  }
  std::regex re("execute prism_set: INSERT INTO " + table_ + " [^\n]*\n");
  std::smatch m;
  ASSERT_TRUE(std::regex_search(log, m, re));
  EXPECT_EQ(m.str().find("/*"), std::string::npos) << m.str();
}

TEST(ChildProcess, TraceFileAndStartupFailures) {
  ASSERT_NE(g_pg, nullptr);
  std::string dir = pt::MakeTempDir("prism-pg-child-");
  std::string target = "unix://" + dir + "/pg.sock";
  std::string trace_file = dir + "/traces.jsonl";
  pt::ChildProcess p(
      PRISM_POSTGRES_PLUGIN,
      {"--conninfo", g_pg->Get("CONNINFO"), "--table", "child_kv", "--listen", target},
      {"OTEL_TRACES_EXPORTER=file", "PRISM_TRACE_FILE=" + trace_file,
       "OTEL_SERVICE_NAME=", "OTEL_TRACES_SAMPLER=parentbased_always_on"},
      dir + "/stderr");
  ASSERT_TRUE(pt::WaitServing(target, 20s)) << pt::ReadFile(dir + "/stderr");
  auto stub =
      prism::v1::KeyValue::NewStub(grpc::CreateChannel(target, grpc::InsecureChannelCredentials()));
  {
    grpc::ClientContext ctx;
    ctx.AddMetadata("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
    prism::v1::SetRequest req;
    req.set_namespace_("ns");
    req.set_key("k");
    req.set_value("secret-value");
    prism::v1::SetResponse resp;
    ASSERT_TRUE(stub->Set(&ctx, req, &resp).ok());
  }
  p.Signal(SIGTERM);
  ASSERT_EQ(p.Wait(20s), 0) << pt::ReadFile(dir + "/stderr");
  auto spans = pt::ReadTraceFile(trace_file);
  const pt::JsonSpan* server = pt::FindSpan(spans, "prism.v1.KeyValue/Set");
  const pt::JsonSpan* pool = pt::FindSpan(spans, "pool.acquire");
  const pt::JsonSpan* stmt = pt::FindSpan(spans, "INSERT child_kv");
  ASSERT_TRUE(server && pool && stmt) << pt::ReadFile(trace_file);
  EXPECT_EQ(server->trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
  EXPECT_EQ(server->parent_span_id, "00f067aa0ba902b7");
  EXPECT_EQ(server->service_name, "prism-plugin-postgres");
  EXPECT_EQ(pool->parent_span_id, server->span_id);
  EXPECT_EQ(stmt->parent_span_id, server->span_id);
  EXPECT_EQ(stmt->attrs.at("db.system.name"), "postgresql");
  EXPECT_EQ(pt::ReadFile(trace_file).find("secret-value"), std::string::npos);

  // Nothing listening: exit 1 with libpq's reason.
  pt::ChildProcess q(
      PRISM_POSTGRES_PLUGIN,
      {"--conninfo", "host=127.0.0.1 port=1 user=prism", "--listen", "unix://" + dir + "/q.sock"},
      {"OTEL_TRACES_EXPORTER=none"}, dir + "/stderr2");
  EXPECT_EQ(q.Wait(20s), 1);
  std::string err = pt::ReadFile(dir + "/stderr2");
  EXPECT_NE(err.find("cannot connect to postgresql: connection to server at \"127.0.0.1\", port 1 "
                     "failed: Connection refused"),
            std::string::npos)
      << err;
  // Settings checked before connecting.
  for (std::vector<std::string> bad :
       {std::vector<std::string>{"--table", "Robert'); DROP TABLE kv;--"},
        std::vector<std::string>{"--sqlcommenter", "maybe"},
        std::vector<std::string>{"--statements", "sometimes"},
        std::vector<std::string>{"--pool-size", "0"}}) {
    bad.push_back("--listen");
    bad.push_back("unix://" + dir + "/r.sock");
    pt::ChildProcess r(PRISM_POSTGRES_PLUGIN, bad, {"OTEL_TRACES_EXPORTER=none"}, dir + "/stderr3");
    EXPECT_EQ(r.Wait(20s), 1) << bad[0];
    err = pt::ReadFile(dir + "/stderr3");
    EXPECT_NE(err.find(bad[0]), std::string::npos) << err;
  }
  if (!::testing::Test::HasFailure()) std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace prism::postgres
