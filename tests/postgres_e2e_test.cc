// End to end on PostgreSQL: the real prism-proxy launching the real
// prism-plugin-postgres against a real PostgreSQL this test starts
// (plugins/postgres/scripts/throwaway-postgres.sh: initdb in a temporary
// directory, 127.0.0.1 on a free port, destroyed afterwards and when this
// process dies), the prism CLI, the trace file, an OTLP receiver written by
// others (tools/interop/receiver.js), and PostgreSQL's own statement log.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <libpq-fe.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>
#include <thread>

#include "backend_server.h"
#include "prism/v1/kv.grpc.pb.h"
#include "support.h"
#include "trace_file.h"
#include "traced_server.h"

namespace prism::e2e {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

const prism::cli::SpanRecord* Find(const std::vector<prism::cli::SpanRecord>& spans,
                                   const std::string& name, const std::string& service,
                                   int kind = 0) {
  for (const auto& s : spans) {
    if (s.name == name && s.service == service && (kind == 0 || s.kind == kind)) return &s;
  }
  return nullptr;
}

// tools/interop/receiver.js: OTLP decoded by the OpenTelemetry JS project's
// own protobuf definitions; one JSON line per export request.
class OtlpReceiver {
 public:
  explicit OtlpReceiver(const std::string& dir) : out_(dir + "/otlp.jsonl") {
    std::string ready = dir + "/otlp.ready";
    pid_ = fork();
    if (pid_ == 0) {
      if (!std::freopen(ready.c_str(), "w", stdout)) _exit(127);
      std::string script = std::string(PRISM_SOURCE_DIR) + "/tools/interop/receiver.js";
      execlp("node", "node", script.c_str(), "--out", out_.c_str(), nullptr);
      _exit(127);
    }
    for (int i = 0; i < 1000 && port_ == 0; ++i) {
      std::ifstream in(ready);
      std::string line;
      int grpc_port = 0;
      if (std::getline(in, line) &&
          std::sscanf(line.c_str(), "READY http=%d grpc=%d", &port_, &grpc_port) == 2) {
        break;
      }
      port_ = 0;
      if (waitpid(pid_, nullptr, WNOHANG) == pid_) {
        pid_ = -1;
        break;
      }
      std::this_thread::sleep_for(20ms);
    }
  }
  ~OtlpReceiver() {
    if (pid_ > 0) {
      kill(pid_, SIGTERM);
      waitpid(pid_, nullptr, 0);
    }
  }
  int port() const { return port_; }
  // Every span received: (service.name, span).
  std::vector<std::pair<std::string, json>> Spans() const {
    std::vector<std::pair<std::string, json>> out;
    std::ifstream in(out_);
    for (std::string line; std::getline(in, line);) {
      auto j = json::parse(line, nullptr, false);
      if (j.is_discarded()) continue;
      for (const auto& rs : j["decoded"].value("resourceSpans", json::array())) {
        std::string service;
        for (const auto& a : rs["resource"].value("attributes", json::array())) {
          if (a.value("key", "") == "service.name") service = a["value"].value("stringValue", "");
        }
        for (const auto& ss : rs.value("scopeSpans", json::array())) {
          for (const auto& s : ss.value("spans", json::array())) out.emplace_back(service, s);
        }
      }
    }
    return out;
  }

 private:
  std::string out_;
  pid_t pid_ = -1;
  int port_ = 0;
};

class PostgresE2E : public ::testing::Test {
 protected:
  void SetUp() override {
    auto pg = prism::plugin::testing::BackendServer::Start(PRISM_THROWAWAY_POSTGRES,
                                                           {"--log-statements"});
    ASSERT_TRUE(pg.ok()) << pg.status();
    pg_ = std::move(*pg);
    dir_ = MakeTempDir();
  }
  void TearDown() override {
    if (!HasFailure() && !std::getenv("PRISM_E2E_KEEP")) std::filesystem::remove_all(dir_);
  }
  std::string Config() const {
    return "namespaces:\n"
           "  pg:\n"
           "    plugin:\n"
           "      command: [prism-plugin-postgres]\n"
           "      settings:\n"
           "        conninfo: \"" +
           pg_->Get("CONNINFO") +
           "\"\n"
           "        table: e2e_kv\n"
           "        pool-size: \"2\"\n";
  }
  std::string WaitLog(const std::string& needle) {
    std::string log;
    for (int i = 0; i < 150; ++i) {
      log = ReadFile(pg_->Get("LOG"));
      if (log.find(needle) != std::string::npos) break;
      std::this_thread::sleep_for(20ms);
    }
    return log;
  }
  std::unique_ptr<prism::plugin::testing::BackendServer> pg_;
  std::string dir_;
};

// Key-value through the proxy (binary values byte-exact), and one trace
// CLI -> proxy -> plugin -> pool.acquire / statement with exact parent links
// in the trace file and in the OTLP receiver, and the statement span's
// traceparent in PostgreSQL's log.
TEST_F(PostgresE2E, KeyValueAndOneTraceIntoPostgres) {
  struct stat st;
  ASSERT_EQ(stat((std::string(PRISM_SOURCE_DIR) + "/tools/interop/node_modules").c_str(), &st), 0)
      << "run tools/interop/install.sh (make interop-deps) first";
  OtlpReceiver receiver(dir_);
  ASSERT_GT(receiver.port(), 0) << "OTLP receiver did not start";
  Proxy proxy(
      dir_, Config(), {},
      {{"OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:" + std::to_string(receiver.port())},
       {"OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"}});
  ASSERT_TRUE(proxy.ok()) << ReadFile(proxy.stderr_path());
  EXPECT_NE(proxy.banner().find("namespace pg -> prism-plugin-postgres"), std::string::npos)
      << proxy.banner();

  auto stub = prism::v1::KeyValue::NewStub(
      grpc::CreateChannel(proxy.address(), grpc::InsecureChannelCredentials()));
  std::string bytes;
  for (int i = 0; i < 256; ++i) bytes.push_back(static_cast<char>(i));
  auto set_status = prism::plugin::testing::KvSet(*stub, "pg", "binary", bytes, 10s);
  ASSERT_TRUE(set_status.ok()) << set_status.error_message();
  prism::v1::GetResponse got;
  ASSERT_TRUE(prism::plugin::testing::KvGet(*stub, "pg", "binary", &got, 10s).ok());
  EXPECT_TRUE(got.found());
  EXPECT_EQ(got.value(), bytes);

  std::map<std::string, std::string> env = {{"PRISM_ADDR", proxy.address()},
                                            {"PRISM_TRACE_FILE", proxy.trace_file()},
                                            {"OTEL_BSP_SCHEDULE_DELAY", "100"}};
  auto set = RunProcess(CliBinary(), {"kv", "set", "greeting", "hello", "-n", "pg"}, env);
  ASSERT_EQ(set.exit_code, 0) << set.err;
  auto get = RunProcess(CliBinary(), {"kv", "get", "greeting", "-n", "pg", "--json"}, env);
  ASSERT_EQ(get.exit_code, 0) << get.err;
  json j = json::parse(get.out);
  EXPECT_EQ(j["value"], "hello");
  std::string trace_id = j["trace_id"];
  ASSERT_EQ(trace_id.size(), 32u);
  EXPECT_EQ(proxy.Stop(), 0);

  auto file = prism::cli::TraceFile::Load(proxy.trace_file());
  ASSERT_TRUE(file.ok()) << file.status();
  ASSERT_NE(file->Spans(trace_id), nullptr) << "no trace " << trace_id;
  const std::vector<prism::cli::SpanRecord>& spans = *file->Spans(trace_id);
  const auto* cli = Find(spans, "prism.v1.KeyValue/Get", "prism-cli");
  const auto* server = Find(spans, "prism.v1.KeyValue/Get", "prism-proxy", 2);
  const auto* client = Find(spans, "prism.v1.KeyValue/Get", "prism-proxy", 3);
  const auto* plugin = Find(spans, "prism.v1.KeyValue/Get", "prism-plugin-postgres");
  const auto* acquire = Find(spans, "pool.acquire", "prism-plugin-postgres");
  const auto* stmt = Find(spans, "SELECT e2e_kv", "prism-plugin-postgres");
  ASSERT_TRUE(cli && server && client && plugin && acquire && stmt)
      << spans.size() << " spans\n"
      << ReadFile(proxy.trace_file()).substr(0, 3000);
  EXPECT_EQ(server->parent_span_id, cli->span_id);
  EXPECT_EQ(client->parent_span_id, server->span_id);
  EXPECT_EQ(plugin->parent_span_id, client->span_id);
  EXPECT_EQ(acquire->parent_span_id, plugin->span_id);
  EXPECT_EQ(stmt->parent_span_id, plugin->span_id);
  EXPECT_EQ(stmt->attributes.value("db.system.name", ""), "postgresql");
  EXPECT_EQ(stmt->attributes.value("db.query.text", ""),
            "SELECT value FROM e2e_kv WHERE ns = $1 AND key = $2");
  EXPECT_EQ(stmt->attributes.value("server.address", ""), "127.0.0.1");

  // The same spans, same ids, reached the OTLP receiver.
  std::vector<std::pair<std::string, json>> otlp;
  auto in_otlp = [&](const prism::cli::SpanRecord* s) {
    for (const auto& [svc, o] : otlp) {
      if (o.value("spanId", "") == s->span_id && o.value("traceId", "") == trace_id &&
          o.value("parentSpanId", "") == s->parent_span_id && o.value("name", "") == s->name &&
          svc == s->service) {
        return true;
      }
    }
    return false;
  };
  for (int i = 0; i < 200; ++i) {
    otlp = receiver.Spans();
    if (in_otlp(stmt) && in_otlp(acquire) && in_otlp(plugin) && in_otlp(server)) break;
    std::this_thread::sleep_for(20ms);
  }
  for (const auto* s : {server, client, plugin, acquire, stmt}) {
    EXPECT_TRUE(in_otlp(s)) << s->name << " " << s->service << " not in the OTLP receiver";
  }

  // PostgreSQL's own record of the statement names the statement span.
  std::string needle = "SELECT value FROM e2e_kv WHERE ns = $1 AND key = $2 /*traceparent='00-" +
                       trace_id + "-" + stmt->span_id + "-0";
  std::string log = WaitLog(needle);
  EXPECT_NE(log.find(needle), std::string::npos) << needle << "\n" << log.substr(0, 3000);
}

// A statement made slow by a row lock the test holds: `prism trace show`
// draws the waterfall with the statement as the bottleneck.
TEST_F(PostgresE2E, SlowStatementIsTheBottleneckInTraceShow) {
  Proxy proxy(dir_, Config());
  ASSERT_TRUE(proxy.ok()) << ReadFile(proxy.stderr_path());
  std::map<std::string, std::string> env = {{"PRISM_ADDR", proxy.address()},
                                            {"PRISM_TRACE_FILE", proxy.trace_file()},
                                            {"OTEL_BSP_SCHEDULE_DELAY", "100"}};
  ASSERT_EQ(RunProcess(CliBinary(), {"kv", "set", "hot", "v0", "-n", "pg"}, env).exit_code, 0);
  PGconn* lock = PQconnectdb(pg_->Get("CONNINFO").c_str());
  ASSERT_EQ(PQstatus(lock), CONNECTION_OK);
  PQclear(PQexec(lock, "BEGIN"));
  PGresult* r = PQexec(lock, "SELECT 1 FROM e2e_kv WHERE ns = 'pg' AND key = 'hot' FOR UPDATE");
  ASSERT_EQ(PQntuples(r), 1);
  PQclear(r);
  std::thread release([&] {
    std::this_thread::sleep_for(600ms);
    PQclear(PQexec(lock, "COMMIT"));
  });
  auto set = RunProcess(CliBinary(), {"kv", "set", "hot", "v1", "-n", "pg", "--json"}, env);
  release.join();
  PQfinish(lock);
  ASSERT_EQ(set.exit_code, 0) << set.err;
  std::string trace_id = json::parse(set.out)["trace_id"];
  EXPECT_EQ(proxy.Stop(), 0);
  auto show = RunProcess(CliBinary(), {"trace", "show", trace_id}, env);
  ASSERT_EQ(show.exit_code, 0) << show.err;
  // The statement row under the plugin's SERVER row, taking the time, and
  // its bar nearly as long as the whole trace's.
  std::regex rows(
      "└─ prism\\.v1\\.KeyValue/Set +prism-plugin-postgres .*\n"
      "(.*pool\\.acquire +prism-plugin-postgres .*\n)?"
      ".*INSERT e2e_kv +prism-plugin-postgres +([0-9.]+) ms .*\n");
  std::smatch m;
  ASSERT_TRUE(std::regex_search(show.out, m, rows)) << show.out;
  EXPECT_GE(std::stod(m[2]), 400.0) << show.out;
  auto bar = [](const std::string& line) {
    size_t n = 0;
    for (size_t p = line.find("█"); p != std::string::npos; p = line.find("█", p + 1)) ++n;
    return n;
  };
  std::string stmt_row = m[0].str().substr(m[0].str().rfind("INSERT e2e_kv"));
  size_t root_at = show.out.find("prism.v1.KeyValue/Set ");
  ASSERT_NE(root_at, std::string::npos);
  std::string root_row = show.out.substr(root_at, show.out.find('\n', root_at) - root_at);
  EXPECT_GE(bar(stmt_row) * 10, bar(root_row) * 7) << show.out;  // >= 70 % of the root's bar
  EXPECT_GE(bar(root_row), 10u) << show.out;
}

// The server restarted under the proxy: UNAVAILABLE while it is down (no
// call hanging past its deadline), success after, no acknowledged write lost.
TEST_F(PostgresE2E, ServerRestartBehindTheProxy) {
  Proxy proxy(dir_, Config());
  ASSERT_TRUE(proxy.ok()) << ReadFile(proxy.stderr_path());
  auto stub = prism::v1::KeyValue::NewStub(
      grpc::CreateChannel(proxy.address(), grpc::InsecureChannelCredentials()));
  auto set = [&](const std::string& key) {
    return prism::plugin::testing::KvSet(*stub, "pg", key, "v-" + key, 1s);
  };
  std::vector<std::string> acked;
  int i = 0;
  for (; i < 10; ++i) {
    ASSERT_TRUE(set("k" + std::to_string(i)).ok());
    acked.push_back("k" + std::to_string(i));
  }
  ASSERT_TRUE(pg_->Stop().ok());
  for (int n = 0; n < 5; ++n, ++i) {
    auto t0 = std::chrono::steady_clock::now();
    auto s = set("k" + std::to_string(i));
    EXPECT_LT(std::chrono::steady_clock::now() - t0, 1100ms);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAVAILABLE) << s.error_message();
    EXPECT_NE(s.error_message().find("postgresql"), std::string::npos) << s.error_message();
    if (s.ok()) acked.push_back("k" + std::to_string(i));
  }
  ASSERT_TRUE(pg_->StartAgain().ok());
  for (int n = 0; n < 10; ++n, ++i) {
    auto s = set("k" + std::to_string(i));
    EXPECT_TRUE(s.ok()) << s.error_message();
    if (s.ok()) acked.push_back("k" + std::to_string(i));
  }
  // A restart nobody called during: the pooled connections are stale, and
  // the plugin notices before using them (no call fails for it).
  ASSERT_TRUE(pg_->Stop().ok());
  ASSERT_TRUE(pg_->StartAgain().ok());
  for (int n = 0; n < 6; ++n, ++i) {
    auto s = set("k" + std::to_string(i));
    EXPECT_TRUE(s.ok()) << s.error_message();
    if (s.ok()) acked.push_back("k" + std::to_string(i));
  }
  for (const auto& key : acked) {
    prism::v1::GetResponse resp;
    ASSERT_TRUE(prism::plugin::testing::KvGet(*stub, "pg", key, &resp, 2s).ok());
    EXPECT_TRUE(resp.found()) << key;
    EXPECT_EQ(resp.value(), "v-" + key);
  }
}

}  // namespace
}  // namespace prism::e2e
