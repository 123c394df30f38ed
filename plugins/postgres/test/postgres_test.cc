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
#include "prism/tracing/in_memory_recorder.h"
#include "prism/tracing/propagation.h"
#include "testing.h"
#include "traced_server.h"

namespace prism::postgres {
namespace {

namespace pt = prism::plugin::testing;
namespace tr = prism::tracing;
using namespace std::chrono_literals;
const tr::SpanData* Named(const std::vector<tr::SpanData>& spans, const std::string& name) {
  const tr::SpanData* found = nullptr;
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
    if (dir_.empty()) dir_ = pt::MakeTempDir("prism-pg-test-");
    PgOptions o;
    o.conninfo = conninfo;
    o.table = table_;
    o.pool_size = pool_size;
    o.acquire_timeout_ms = acquire_timeout_ms;
    o.connect_timeout_ms = 2000;
    o.tracer = kv_.Tracer("prism.plugin.postgres");
    auto service = PgService::Open(o);
    ASSERT_TRUE(service.ok()) << service.status();
    service_ = std::move(*service);
    ASSERT_TRUE(kv_.Start(service_.get(), dir_));
  }

  void Restart(const std::string& conninfo, int pool_size, int acquire_timeout_ms = 5000) {
    kv_.Stop();
    service_.reset();
    kv_.recorder.Clear();
    Start(conninfo, pool_size, acquire_timeout_ms);
  }

  void TearDown() override {
    kv_.Stop();
    if (!HasFailure()) std::filesystem::remove_all(dir_);
  }

  std::vector<tr::SpanData> WaitSpans(size_t n) { return kv_.WaitSpans(n); }

  // Waits until PostgreSQL's log has `needle`; returns the log.
  std::string WaitLog(const std::string& needle) {
    std::string log;
    for (int i = 0; i < 100; ++i) {
      log = pt::ReadFile(g_pg->Get("LOG"));
      if (log.find(needle) != std::string::npos) break;
      std::this_thread::sleep_for(20ms);
    }
    return log;
  }

  grpc::Status Set(const std::string& key, const std::string& value,
                   std::chrono::milliseconds deadline = 5s) {
    return pt::KvSet(*kv_.stub, "ns", key, value, deadline);
  }
  grpc::Status Get(const std::string& key, prism::v1::GetResponse* resp,
                   std::chrono::milliseconds deadline = 5s) {
    return pt::KvGet(*kv_.stub, "ns", key, resp, deadline);
  }

  pt::TracedKvServer kv_;
  std::string dir_, table_;
  std::unique_ptr<PgService> service_;
};

std::string AllBytes() {
  std::string s;
  for (int i = 0; i < 256; ++i) s.push_back(static_cast<char>(i));
  return s;
}

TEST_F(InProcess, AllSevenMethodsBinaryValuesByteExact) {
  std::mt19937 rng(7);
  std::string big(1 << 20, '\0');
  for (auto& ch : big) ch = static_cast<char>(rng());
  // Every byte value, an empty value, 1 MiB of random bytes, a non-ASCII key.
  pt::ExpectKeyValueMethods(
      *kv_.stub, "ns", {{"a", AllBytes()}, {"b", ""}, {"c", big}, {"caf\xc3\xa9", "\xff\x00\xfe"}});

  // A batch is one transaction: one bad item and nothing is written.
  prism::v1::BatchSetRequest bad;
  bad.set_namespace_("ns");
  auto* ok_item = bad.add_items();
  ok_item->set_key("atomic-1");
  ok_item->set_value("v");
  auto* nul_item = bad.add_items();
  nul_item->set_key(std::string("nul\0key", 7));
  nul_item->set_value("v");
  grpc::ClientContext bad_ctx;
  bad_ctx.set_deadline(std::chrono::system_clock::now() + 5s);
  prism::v1::BatchSetResponse bset_resp;
  grpc::Status st = kv_.stub->BatchSet(&bad_ctx, bad, &bset_resp);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << st.error_message();
  prism::v1::GetResponse get_resp;
  ASSERT_TRUE(Get("atomic-1", &get_resp).ok());
  EXPECT_FALSE(get_resp.found());

  auto spans = WaitSpans(kv_.recorder.size());
  const tr::SpanData* batch = Named(spans, "BATCH INSERT " + table_);
  ASSERT_NE(batch, nullptr);
  EXPECT_EQ(pt::AttrInt(*batch, "db.operation.batch.size"), 2);  // the refused batch, the last
}

// The span tree, the stable DB attributes, and the statement span's own
// traceparent in PostgreSQL's log of the statement.
TEST_F(InProcess, SpanTreeAndTraceparentInTheServerLog) {
  ASSERT_TRUE(Set("k", "secret-value").ok());
  WaitSpans(4);
  kv_.recorder.Clear();
  auto root = kv_.client_tracer.StartSpan("root");
  {
    prism::tracing::Scope scope(root);
    prism::v1::GetResponse resp;
    ASSERT_TRUE(Get("k", &resp).ok());
    EXPECT_EQ(resp.value(), "secret-value");
  }
  root.End();
  auto spans = WaitSpans(5);
  const tr::SpanData *client = nullptr, *server = nullptr, *pool = nullptr, *stmt = nullptr;
  for (const auto& s : spans) {
    if (s.kind == tr::SpanKind::kClient && s.name == "prism.v1.KeyValue/Get") client = &s;
    if (s.kind == tr::SpanKind::kServer) server = &s;
    if (s.name == "pool.acquire") pool = &s;
    if (s.name == "SELECT " + table_) stmt = &s;
  }
  ASSERT_TRUE(client && server && pool && stmt);
  const auto& trace = root.context().trace_id();
  for (const tr::SpanData* s : {client, server, pool, stmt})
    EXPECT_EQ(s->context.trace_id(), trace);
  EXPECT_EQ(client->parent_span_id, root.context().span_id());
  EXPECT_EQ(server->parent_span_id, client->context.span_id());
  EXPECT_EQ(pool->parent_span_id, server->context.span_id());
  EXPECT_EQ(stmt->parent_span_id, server->context.span_id());
  EXPECT_EQ(pt::AttrStr(*pool, "db.client.connection.pool.name"), "postgres");
  EXPECT_EQ(stmt->kind, tr::SpanKind::kClient);
  EXPECT_EQ(pt::AttrStr(*stmt, "db.system.name"), "postgresql");
  EXPECT_EQ(pt::AttrStr(*stmt, "db.operation.name"), "SELECT");
  EXPECT_EQ(pt::AttrStr(*stmt, "db.collection.name"), table_);
  EXPECT_EQ(pt::AttrStr(*stmt, "db.namespace"), "postgres|public");
  EXPECT_EQ(pt::AttrStr(*stmt, "db.query.text"),
            "SELECT value FROM " + table_ + " WHERE ns = $1 AND key = $2");
  EXPECT_EQ(pt::AttrStr(*stmt, "server.address"), "127.0.0.1");
  EXPECT_EQ(pt::AttrInt(*stmt, "server.port"), std::stoi(g_pg->Get("PGPORT")));
  EXPECT_EQ(pt::AttrInt(*stmt, "db.response.returned_rows"), 1);
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
  std::string log = WaitLog(expected);
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
  kv_.recorder.Clear();
  // A caller's tracestate that would push the comment past
  // pg_stat_activity's 1024 bytes: it is left out, the traceparent stays,
  // and the comment PostgreSQL shows is whole.
  auto remote = prism::tracing::w3c::ParseTraceparent(
      "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
      "a=" + std::string(200, '*') + ",b=" + std::string(200, '*'));
  ASSERT_TRUE(remote);
  prism::tracing::StartSpanOptions o;
  o.parent = *remote;
  auto root = kv_.client_tracer.StartSpan("root", std::move(o));
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
  const tr::SpanData* stmt = Named(spans, "INSERT " + table_);
  const tr::SpanData* pool = Named(spans, "pool.acquire");
  ASSERT_TRUE(stmt && pool);
  EXPECT_GE(stmt->end_unix_nano - stmt->start_unix_nano, 300'000'000u);
  EXPECT_LT(pt::AttrInt(*pool, "prism.pool.wait_us"), 100'000);
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
  const tr::SpanData* stmt = nullptr;
  for (const auto& s : spans) {
    if (s.name == "INSERT " + table_ && pt::AttrStr(s, "db.response.status_code") == "22021")
      stmt = &s;
  }
  ASSERT_NE(stmt, nullptr);
  EXPECT_EQ(stmt->status, tr::StatusCode::kError);
  EXPECT_EQ(pt::AttrStr(*stmt, "error.type"), "22021");
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
    for (const auto& s : kv_.recorder.spans()) {
      canceled = canceled || (s.name == "INSERT " + table_ &&
                              pt::AttrStr(s, "db.response.status_code") == "57014");
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
    if (s.name == "pool.acquire" && s.status == tr::StatusCode::kError) {
      EXPECT_GE(pt::AttrInt(s, "prism.pool.wait_us"), 250'000);
      ++errors;
    }
  }
  EXPECT_EQ(errors, 2);
  kv_.recorder.Clear();
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
  const tr::SpanData* pool = Named(spans, "pool.acquire");
  ASSERT_NE(pool, nullptr);
  EXPECT_EQ(pool->status, tr::StatusCode::kUnset);
  EXPECT_GE(pt::AttrInt(*pool, "prism.pool.wait_us"), 250'000);
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
    auto spans = kv_.recorder.spans();
    const tr::SpanData* connect = nullptr;
    for (const auto& s : spans) {
      if (s.name == "pool.connect" && s.status == tr::StatusCode::kError) connect = &s;
    }
    ASSERT_NE(connect, nullptr);
    EXPECT_NE(connect->status_message.find("cannot connect to postgresql"), std::string::npos);
    bool parent_is_server = false;
    for (const auto& s : spans) {
      parent_is_server = parent_is_server || (s.kind == tr::SpanKind::kServer &&
                                              s.context.span_id() == connect->parent_span_id);
    }
    EXPECT_TRUE(parent_is_server);
  }
  // UNAVAILABLE names the server and the reason.
  ASSERT_TRUE(pg->Stop().ok());
  grpc::Status st = Set("after", "v", 2s);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_NE(st.error_message().find("127.0.0.1"), std::string::npos) << st.error_message();
  kv_.Stop();
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
  auto root = kv_.client_tracer.StartSpan("root", std::move(o));
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
  const tr::SpanData* stmt = Named(spans, "INSERT " + table_);
  ASSERT_NE(stmt, nullptr);
  std::string tp = prism::tracing::w3c::FormatTraceparent(stmt->context);
  std::string expected = "/*traceparent='" + tp +
                         "',tracestate='evil%3D%2A%2Fselect%20pg_sleep%285%29%2F%2A%2Cq%3Dx%27%"
                         "3Bdrop%20table%20kv%3B--%2Cb%3D%5C'*/";
  std::string log = WaitLog(expected);
  EXPECT_NE(log.find(expected), std::string::npos) << expected;
  Session check(g_pg->Get("CONNINFO"));
  EXPECT_EQ(check.Exec("SELECT count(*) FROM " + table_), "1");
}

// Comment off: the prepared statements run, no comment reaches the server.
TEST_F(InProcess, CommentOffUsesPreparedStatements) {
  kv_.Stop();
  PgOptions o;
  o.conninfo = g_pg->Get("CONNINFO");
  o.table = table_;
  o.sqlcommenter = false;
  o.tracer = kv_.Tracer("prism.plugin.postgres");
  auto service = PgService::Open(o);
  ASSERT_TRUE(service.ok()) << service.status();
  ASSERT_TRUE(kv_.Start(service->get(), dir_, "s2.sock"));
  ASSERT_TRUE(Set("plain-key-for-off", "v").ok());
  kv_.Stop();
  std::string log = WaitLog("execute prism_set: INSERT INTO " + table_);
  std::regex re("execute prism_set: INSERT INTO " + table_ + " [^\\n]*\\n");
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
  ASSERT_TRUE(
      pt::KvSet(*stub, "ns", "k", "secret-value", 5s,
                {{"traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}})
          .ok());
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
