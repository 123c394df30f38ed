// End-to-end tests: the real prism-proxy, real plugin processes, the prism
// CLI, and the trace file they all write.

#include <arpa/inet.h>
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <filesystem>
#include <future>
#include <nlohmann/json.hpp>
#include <regex>
#include <thread>
#include <tuple>

#include "auth.h"
#include "prism/v1/kv.grpc.pb.h"
#include "support.h"
#include "trace_file.h"

namespace prism::e2e {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;

struct CallResult {
  grpc::Status status;
  std::string trace_id, request_id;
  prism::v1::GetResponse get;
};

std::string Md(const std::multimap<grpc::string_ref, grpc::string_ref>& md, const char* key) {
  auto it = md.find(key);
  return it == md.end() ? "" : std::string(it->second.data(), it->second.size());
}

void Ids(grpc::ClientContext& ctx, CallResult& r) {
  r.trace_id = Md(ctx.GetServerInitialMetadata(), "x-trace-id");
  if (r.trace_id.empty()) r.trace_id = Md(ctx.GetServerTrailingMetadata(), "x-trace-id");
  r.request_id = Md(ctx.GetServerInitialMetadata(), "x-request-id");
  if (r.request_id.empty()) r.request_id = Md(ctx.GetServerTrailingMetadata(), "x-request-id");
}

class Client {
 public:
  // `own_connection`: not shared with other channels to `addr` (grpc++
  // otherwise shares one connection between channels with the same
  // arguments).
  explicit Client(const std::string& addr, bool own_connection = false)
      : stub_(prism::v1::KeyValue::NewStub(
            grpc::CreateCustomChannel(addr, grpc::InsecureChannelCredentials(), [&] {
              grpc::ChannelArguments args;
              if (own_connection) args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
              return args;
            }()))) {}

  CallResult Get(const std::string& ns, const std::string& key, const std::string& token = "",
                 std::chrono::milliseconds deadline = 5s, const std::string& request_id = "") {
    grpc::ClientContext ctx;
    Prepare(ctx, token, deadline, request_id);
    prism::v1::GetRequest req;
    req.set_namespace_(ns);
    req.set_key(key);
    CallResult r;
    r.status = stub_->Get(&ctx, req, &r.get);
    Ids(ctx, r);
    return r;
  }
  CallResult Set(const std::string& ns, const std::string& key, const std::string& value,
                 const std::string& token = "") {
    grpc::ClientContext ctx;
    Prepare(ctx, token, 5s, "");
    prism::v1::SetRequest req;
    req.set_namespace_(ns);
    req.set_key(key);
    req.set_value(value);
    prism::v1::SetResponse resp;
    CallResult r;
    r.status = stub_->Set(&ctx, req, &resp);
    Ids(ctx, r);
    return r;
  }

 private:
  static void Prepare(grpc::ClientContext& ctx, const std::string& token,
                      std::chrono::milliseconds deadline, const std::string& request_id) {
    ctx.set_deadline(std::chrono::system_clock::now() + deadline);
    if (!token.empty()) ctx.AddMetadata("authorization", "Bearer " + token);
    if (!request_id.empty()) ctx.AddMetadata("x-request-id", request_id);
  }
  std::unique_ptr<prism::v1::KeyValue::Stub> stub_;
};

const prism::cli::SpanRecord* Find(const std::vector<prism::cli::SpanRecord>& spans,
                                   const std::string& name, const std::string& service, int kind) {
  for (const auto& s : spans) {
    if (s.name == name && s.service == service && s.kind == kind) return &s;
  }
  return nullptr;
}

std::string Attr(const prism::cli::SpanRecord& s, const std::string& key) {
  if (!s.attributes.contains(key)) return "<missing>";
  const auto& v = s.attributes[key];
  return v.is_string() ? v.get<std::string>() : v.dump();
}

bool HasException(const prism::cli::SpanRecord& s) {
  for (const auto& e : s.events) {
    if (e.value("name", "") == "exception") return true;
  }
  return false;
}

std::vector<prism::cli::SpanRecord> TraceSpans(const std::string& file, const std::string& id) {
  auto f = prism::cli::TraceFile::Load(file);
  if (!f.ok()) return {};
  const auto* spans = f->Spans(id);
  return spans ? *spans : std::vector<prism::cli::SpanRecord>{};
}

// ---------------------------------------------------------------------------

// The embedded default (no config: namespace `default` on prism-plugin-sqlite)
// and one trace from the CLI's CLIENT span through the proxy to the plugin's
// statement span, read from the file both processes wrote.
TEST(ProxyE2E, OneTraceFromClientToStatement) {
  std::string dir = MakeTempDir();
  Proxy proxy(dir, "");
  ASSERT_TRUE(proxy.ok()) << ReadFile(proxy.stderr_path());
  EXPECT_NE(proxy.banner().find("namespace default -> prism-plugin-sqlite"), std::string::npos)
      << proxy.banner();
  EXPECT_NE(proxy.banner().find("no token needed (listening on loopback only)"), std::string::npos);
  EXPECT_NE(proxy.banner().find("traces -> " + proxy.trace_file()), std::string::npos);

  std::map<std::string, std::string> env = {{"PRISM_ADDR", proxy.address()},
                                            {"PRISM_TRACE_FILE", proxy.trace_file()},
                                            {"OTEL_BSP_SCHEDULE_DELAY", "100"}};
  auto set = RunProcess(CliBinary(), {"kv", "set", "greeting", "hello"}, env);
  ASSERT_EQ(set.exit_code, 0) << set.err;
  EXPECT_EQ(set.out, "OK\n");
  EXPECT_NE(set.err.find("trace "), std::string::npos);
  auto get =
      RunProcess(CliBinary(), {"kv", "get", "greeting", "--json", "--request-id", "req-42"}, env);
  ASSERT_EQ(get.exit_code, 0) << get.err;
  json j = json::parse(get.out);
  EXPECT_EQ(j["value"], "hello");
  EXPECT_EQ(j["request_id"], "req-42");
  std::string trace_id = j["trace_id"];
  ASSERT_EQ(trace_id.size(), 32u);
  EXPECT_EQ(proxy.Stop(), 0);  // SIGTERM: drain, stop plugins, flush, exit 0

  auto spans = TraceSpans(proxy.trace_file(), trace_id);
  const auto* cli = Find(spans, "prism.v1.KeyValue/Get", "prism-cli", 3);
  const auto* connect = Find(spans, "prism.connect", "prism-cli", 1);
  const auto* server = Find(spans, "prism.v1.KeyValue/Get", "prism-proxy", 2);
  const auto* auth = Find(spans, "prism.auth.verify", "prism-proxy", 1);
  const auto* route = Find(spans, "prism.routing.select_plugin", "prism-proxy", 1);
  const auto* client = Find(spans, "prism.v1.KeyValue/Get", "prism-proxy", 3);
  const auto* plugin = Find(spans, "prism.v1.KeyValue/Get", "prism-plugin-sqlite", 2);
  ASSERT_TRUE(cli && connect && server && auth && route && client && plugin)
      << "spans of " << trace_id << ": " << spans.size() << "\n"
      << ReadFile(proxy.trace_file()).substr(0, 4000);
  const prism::cli::SpanRecord* statement = nullptr;
  const prism::cli::SpanRecord* acquire = nullptr;
  for (const auto& s : spans) {
    if (Attr(s, "db.system.name") == "sqlite") statement = &s;
    if (s.name == "pool.acquire") acquire = &s;
  }
  ASSERT_NE(statement, nullptr);

  // Exact parent links.
  EXPECT_EQ(cli->parent_span_id, "");
  EXPECT_EQ(connect->parent_span_id, cli->span_id);
  EXPECT_EQ(server->parent_span_id, cli->span_id);
  EXPECT_EQ(auth->parent_span_id, server->span_id);
  EXPECT_EQ(route->parent_span_id, server->span_id);
  EXPECT_EQ(client->parent_span_id, server->span_id);
  EXPECT_EQ(plugin->parent_span_id, client->span_id);
  EXPECT_EQ(statement->parent_span_id, plugin->span_id);
  if (acquire) {
    EXPECT_EQ(acquire->parent_span_id, plugin->span_id);
  }

  // Attributes.
  EXPECT_EQ(Attr(*server, "prism.namespace"), "default");
  EXPECT_EQ(Attr(*server, "prism.request_id"), "req-42");
  EXPECT_EQ(Attr(*server, "prism.operation"), "get");
  EXPECT_EQ(Attr(*server, "rpc.system"), "grpc");
  EXPECT_EQ(Attr(*server, "rpc.service"), "prism.v1.KeyValue");
  EXPECT_EQ(Attr(*server, "rpc.method"), "Get");
  EXPECT_EQ(Attr(*server, "rpc.grpc.status_code"), "0");
  EXPECT_EQ(Attr(*server, "server.address"), "127.0.0.1");
  EXPECT_EQ(Attr(*client, "prism.plugin"), "prism-plugin-sqlite");
  EXPECT_EQ(Attr(*route, "prism.plugin"), "prism-plugin-sqlite");
  EXPECT_EQ(Attr(*statement, "db.operation.name"), "SELECT");
  EXPECT_EQ(server->status_code, 0);
  EXPECT_EQ(Attr(*connect, "server.address"), "127.0.0.1");
  EXPECT_EQ(connect->status_code, 0);
  // Timing nests; the CLI connects before it calls.
  EXPECT_LE(cli->start_ns, connect->start_ns);
  EXPECT_LE(connect->end_ns, server->start_ns + 1000000);  // clocks of one host
  EXPECT_LE(server->start_ns, client->start_ns);
  EXPECT_GE(server->end_ns, client->end_ns);
  EXPECT_LE(client->start_ns, plugin->start_ns + 1000000);  // clocks of one host

  // `prism trace show` draws it (prefix accepted), `ls` lists it.
  auto show = RunProcess(CliBinary(), {"trace", "show", trace_id.substr(0, 12)}, env);
  ASSERT_EQ(show.exit_code, 0) << show.err;
  std::regex rows(
      "prism\\.v1\\.KeyValue/Get +prism-cli .*\n"
      "├─ prism\\.connect +prism-cli .*\n"
      "└─ prism\\.v1\\.KeyValue/Get +prism-proxy .*\n"
      "   ├─ prism\\.auth\\.verify +prism-proxy .*\n"
      "   ├─ prism\\.routing\\.select_plugin +prism-proxy .*\n"
      "   └─ prism\\.v1\\.KeyValue/Get +prism-proxy .*\n"
      "      └─ prism\\.v1\\.KeyValue/Get +prism-plugin-sqlite .*\n");
  EXPECT_TRUE(std::regex_search(show.out, rows)) << show.out;
  EXPECT_NE(show.out.find("SELECT"), std::string::npos) << show.out;
  auto show_json = RunProcess(CliBinary(), {"trace", "show", trace_id, "--json"}, env);
  ASSERT_EQ(show_json.exit_code, 0);
  json sj = json::parse(show_json.out);
  EXPECT_EQ(sj["trace_id"], trace_id);
  EXPECT_EQ(sj["spans"][0]["service"], "prism-cli");
  EXPECT_EQ(sj["spans"][1]["depth"], 1);
  auto ls = RunProcess(CliBinary(), {"trace", "ls"}, env);
  EXPECT_EQ(ls.exit_code, 0);
  EXPECT_NE(ls.out.find(trace_id), std::string::npos) << ls.out;
  // Bad input: exit codes 2 (usage) and 1 (failure).
  EXPECT_EQ(RunProcess(CliBinary(), {"trace", "show", "not-hex"}, env).exit_code, 2);
  EXPECT_EQ(RunProcess(CliBinary(), {"trace", "show", "ffffffffffff"}, env).exit_code, 1);
  EXPECT_EQ(RunProcess(CliBinary(), {"kv", "frobnicate"}, env).exit_code, 2);
  auto bad_limit = RunProcess(CliBinary(), {"trace", "ls", "--limit", "-1"}, env);
  EXPECT_EQ(bad_limit.exit_code, 2);
  EXPECT_NE(bad_limit.err.find("--limit: must be a whole number >= 0"), std::string::npos)
      << bad_limit.err;
  auto bad_timeout = RunProcess(CliBinary(), {"kv", "get", "k", "--timeout", "0"}, env);
  EXPECT_EQ(bad_timeout.exit_code, 2);
  EXPECT_NE(bad_timeout.err.find("--timeout: must be a number of seconds above 0"),
            std::string::npos)
      << bad_timeout.err;
  auto all = RunProcess(CliBinary(), {"trace", "ls", "--limit", "0", "--json"}, env);
  ASSERT_EQ(all.exit_code, 0) << all.err;
  EXPECT_EQ(json::parse(all.out).size(), 2u);  // the Set and the Get: 0 lists all
  if (!::testing::Test::HasFailure() && !std::getenv("PRISM_E2E_KEEP"))
    std::filesystem::remove_all(dir);
}

constexpr const char* kWriter = "writer-secret-token";
constexpr const char* kReader = "reader-secret-token";

std::string ErrorConfig(const std::string& dir) {
  return "namespaces:\n"
         "  default:\n"
         "    plugin:\n"
         "      command: [prism-plugin-memstore]\n"
         "  down:\n"
         "    plugin:\n"
         "      address: unix://" +
         dir +
         "/nothing-listens-here.sock\n"
         "tokens:\n"
         "  - name: writer\n"
         "    sha256: " +
         prism::proxy::Sha256Hex(kWriter) +
         "\n"
         "    rights: {\"*\": [read, write]}\n"
         "  - name: reader\n"
         "    sha256: " +
         prism::proxy::Sha256Hex(kReader) +
         "\n"
         "    rights: {default: read}\n";
}

// A port nothing listens on: bound, read, closed.
int UnusedLoopbackPort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(a);
  if (fd < 0 || bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
    if (fd >= 0) close(fd);
    return 0;
  }
  close(fd);
  return ntohs(a.sin_port);
}

// No proxy at the address: the CLI fails at once (not at its 10 s deadline)
// with UNAVAILABLE and exit code 1, and its trace shows the failed connect.
TEST(CliE2E, UnreachableProxyFailsFastWithAFailedConnectSpan) {
  std::string dir = MakeTempDir();
  const int port = UnusedLoopbackPort();
  ASSERT_GT(port, 0);
  const std::string trace_file = dir + "/traces.jsonl";
  std::map<std::string, std::string> env = {{"PRISM_ADDR", "127.0.0.1:" + std::to_string(port)},
                                            {"PRISM_TRACE_FILE", trace_file}};
  const auto start = std::chrono::steady_clock::now();
  auto r = RunProcess(CliBinary(), {"kv", "get", "k", "--json"}, env);
  EXPECT_LT(std::chrono::steady_clock::now() - start, 5s);
  EXPECT_EQ(r.exit_code, 1) << r.err;
  json j = json::parse(r.out);
  EXPECT_EQ(j["error"]["code"], "UNAVAILABLE");
  std::string trace_id = j["trace_id"];
  ASSERT_EQ(trace_id.size(), 32u);
  auto spans = TraceSpans(trace_file, trace_id);
  const auto* cli = Find(spans, "prism.v1.KeyValue/Get", "prism-cli", 3);
  const auto* connect = Find(spans, "prism.connect", "prism-cli", 1);
  ASSERT_TRUE(cli && connect) << ReadFile(trace_file);
  EXPECT_EQ(spans.size(), 2u);
  EXPECT_EQ(connect->parent_span_id, cli->span_id);
  EXPECT_EQ(connect->status_code, 2);
  EXPECT_EQ(connect->status_message, "could not connect to 127.0.0.1:" + std::to_string(port));
  EXPECT_EQ(cli->status_code, 2);
}

// A collector that refuses connections costs the CLI at most its 2 s export
// bound (it retried for the 5 s shutdown deadline before, and printed the
// answer only afterwards); the local trace file still gets the trace.
TEST(CliE2E, UnreachableCollectorCostsTheCliAtMostItsExportBound) {
  std::string dir = MakeTempDir();
  Proxy proxy(dir, "");
  ASSERT_TRUE(proxy.ok()) << ReadFile(proxy.stderr_path());
  const int port = UnusedLoopbackPort();
  ASSERT_GT(port, 0);
  const std::string trace_file = dir + "/cli-traces.jsonl";
  std::map<std::string, std::string> env = {
      {"PRISM_ADDR", proxy.address()},
      {"PRISM_TRACE_FILE", trace_file},
      {"OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:" + std::to_string(port)}};
  const auto start = std::chrono::steady_clock::now();
  auto r = RunProcess(CliBinary(), {"kv", "exists", "nothing", "--json"}, env);
  const auto took = std::chrono::steady_clock::now() - start;
  EXPECT_LT(took, 4s);
  EXPECT_GE(took, 1500ms);  // it did try: the bound, not an instant give-up
  ASSERT_EQ(r.exit_code, 0) << r.err;
  json j = json::parse(r.out);
  EXPECT_EQ(j["exists"], false);
  EXPECT_NE(r.err.find("export of"), std::string::npos) << r.err;
  std::string trace_id = j["trace_id"];
  auto spans = TraceSpans(trace_file, trace_id);
  EXPECT_NE(Find(spans, "prism.v1.KeyValue/Exists", "prism-cli", 3), nullptr)
      << ReadFile(trace_file);
  EXPECT_EQ(proxy.Stop(), 0);
}

// SIGTERM with an OTLP collector that is down: the plugin flushes within its
// bound and exits by itself (before, it retried past the proxy's 5 s stop
// grace and was SIGKILLed, losing the spans it had not yet written to the
// local trace file), the proxy flushes its own spans while the plugin stops,
// and the local file has the whole trace.
TEST(ProxyE2E, StopWithCollectorDownKeepsTheLocalTrace) {
  std::string dir = MakeTempDir();
  const int port = UnusedLoopbackPort();
  ASSERT_GT(port, 0);
  Proxy proxy(dir, "", {},
              {{"OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:" + std::to_string(port)}});
  ASSERT_TRUE(proxy.ok()) << ReadFile(proxy.stderr_path());
  std::string trace_id;
  {
    Client c(proxy.address());
    auto r = c.Get("default", "k");
    ASSERT_TRUE(r.status.ok()) << r.status.error_message();
    trace_id = r.trace_id;
  }
  ASSERT_EQ(trace_id.size(), 32u);
  const auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(proxy.Stop(), 0);
  EXPECT_LT(std::chrono::steady_clock::now() - start, 9s);  // was about 15 s
  const std::string log = ReadFile(proxy.stderr_path());
  EXPECT_EQ(log.find("SIGKILL"), std::string::npos) << log;
  auto spans = TraceSpans(proxy.trace_file(), trace_id);
  EXPECT_NE(Find(spans, "prism.v1.KeyValue/Get", "prism-proxy", 2), nullptr);
  EXPECT_NE(Find(spans, "prism.v1.KeyValue/Get", "prism-plugin-sqlite", 2), nullptr)
      << ReadFile(proxy.trace_file());
}

// Every error path: status code, message, response metadata, and the error
// recorded on the proxy's SERVER span (status ERROR + exception event).
TEST(ProxyE2E, ErrorPaths) {
  std::string dir = MakeTempDir();
  Proxy proxy(dir, ErrorConfig(dir));
  ASSERT_TRUE(proxy.ok()) << ReadFile(proxy.stderr_path());
  EXPECT_NE(proxy.banner().find("a token is required (2 configured)"), std::string::npos);
  Client c(proxy.address());

  auto ok = c.Set("default", "k", "v", kWriter);
  ASSERT_TRUE(ok.status.ok()) << ok.status.error_message();
  auto read = c.Get("default", "k", kReader, 5s, "my-request-1");
  ASSERT_TRUE(read.status.ok());
  EXPECT_EQ(read.get.value(), "v");
  EXPECT_EQ(read.request_id, "my-request-1");
  EXPECT_EQ(read.trace_id.size(), 32u);

  struct Case {
    const char* what;
    CallResult r;
    grpc::StatusCode code;
    const char* message;
  };
  std::vector<Case> cases;
  cases.push_back(
      {"no token", c.Get("default", "k"), grpc::UNAUTHENTICATED, "missing access token"});
  cases.push_back({"unknown token", c.Get("default", "k", "wrong"), grpc::UNAUTHENTICATED,
                   "unknown access token"});
  cases.push_back({"no write right", c.Set("default", "k", "x", kReader), grpc::PERMISSION_DENIED,
                   "token 'reader' has no write right on namespace 'default'"});
  cases.push_back({"no right at all", c.Get("down", "k", kReader), grpc::PERMISSION_DENIED,
                   "no read right on namespace 'down'"});
  cases.push_back({"unknown namespace", c.Get("nope", "k", kWriter), grpc::NOT_FOUND,
                   "unknown namespace 'nope'"});
  cases.push_back({"plugin down", c.Get("down", "k", kWriter), grpc::UNAVAILABLE,
                   "for namespace 'down' is unavailable"});
  cases.push_back(
      {"empty namespace", c.Get("", "k", kWriter), grpc::INVALID_ARGUMENT, "names no namespace"});
  for (const auto& k : cases) {
    EXPECT_EQ(k.r.status.error_code(), k.code) << k.what << ": " << k.r.status.error_message();
    EXPECT_NE(k.r.status.error_message().find(k.message), std::string::npos)
        << k.what << ": " << k.r.status.error_message();
    EXPECT_EQ(k.r.trace_id.size(), 32u) << k.what;
    EXPECT_FALSE(k.r.request_id.empty()) << k.what;
  }

  // Malformed bytes and unknown methods through a generic stub.
  auto channel = grpc::CreateChannel(proxy.address(), grpc::InsecureChannelCredentials());
  grpc::GenericStub generic(channel);
  auto raw_call = [&](const std::string& method, const std::string& bytes) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + 5s);
    ctx.AddMetadata("authorization", std::string("Bearer ") + kWriter);
    grpc::Slice slice(bytes);
    grpc::ByteBuffer req(&slice, 1), resp;
    std::promise<grpc::Status> done;
    generic.UnaryCall(&ctx, method, grpc::StubOptions(), &req, &resp,
                      [&](grpc::Status s) { done.set_value(s); });
    return done.get_future().get();
  };
  auto bad = raw_call("/prism.v1.KeyValue/Get", std::string("\x0a\x50"
                                                            "short",
                                                            7));
  EXPECT_EQ(bad.error_code(), grpc::INVALID_ARGUMENT) << bad.error_message();
  EXPECT_NE(bad.error_message().find("malformed request"), std::string::npos);
  auto unimpl = raw_call("/prism.v1.Admin/Drop", "");
  EXPECT_EQ(unimpl.error_code(), grpc::UNIMPLEMENTED);
  // The proxy survived all of it.
  EXPECT_TRUE(c.Get("default", "k", kWriter).status.ok());

  EXPECT_EQ(proxy.Stop(), 0);
  std::string file = ReadFile(proxy.trace_file());
  EXPECT_EQ(file.find(kWriter), std::string::npos) << "a token leaked into the trace file";
  EXPECT_EQ(file.find(kReader), std::string::npos) << "a token leaked into the trace file";
  EXPECT_EQ(ReadFile(proxy.stderr_path()).find(kWriter), std::string::npos);
  for (const auto& k : cases) {
    auto spans = TraceSpans(proxy.trace_file(), k.r.trace_id);
    const auto* server = Find(
        spans,
        k.what == std::string("no write right") ? "prism.v1.KeyValue/Set" : "prism.v1.KeyValue/Get",
        "prism-proxy", 2);
    ASSERT_NE(server, nullptr) << k.what;
    EXPECT_EQ(server->status_code, 2) << k.what;
    EXPECT_NE(server->status_message.find(k.message), std::string::npos) << k.what;
    EXPECT_TRUE(HasException(*server)) << k.what;
    EXPECT_EQ(Attr(*server, "rpc.grpc.status_code"), std::to_string(k.code)) << k.what;
  }
  // The span that decided carries the error too.
  auto denied = TraceSpans(proxy.trace_file(), cases[2].r.trace_id);
  const auto* auth = Find(denied, "prism.auth.verify", "prism-proxy", 1);
  ASSERT_NE(auth, nullptr);
  EXPECT_EQ(auth->status_code, 2);
  EXPECT_TRUE(HasException(*auth));
  EXPECT_EQ(Attr(*auth, "prism.principal"), "reader");
  auto unknown = TraceSpans(proxy.trace_file(), cases[4].r.trace_id);
  const auto* route = Find(unknown, "prism.routing.select_plugin", "prism-proxy", 1);
  ASSERT_NE(route, nullptr);
  EXPECT_EQ(route->status_code, 2);
  if (!::testing::Test::HasFailure() && !std::getenv("PRISM_E2E_KEEP"))
    std::filesystem::remove_all(dir);
}

// A plugin killed mid-run: its namespace answers UNAVAILABLE, the other keeps
// serving, and the supervisor restarts it.
TEST(ProxyE2E, CrashedPluginIsIsolatedAndRestarted) {
  std::string dir = MakeTempDir();
  Proxy proxy(dir,
              "namespaces:\n"
              "  a: {plugin: {command: [prism-plugin-memstore]}}\n"
              "  b: {plugin: {command: [prism-plugin-memstore]}}\n"
              "supervision: {health_interval: 200ms, restart_backoff_initial: 300ms}\n");
  ASSERT_TRUE(proxy.ok()) << ReadFile(proxy.stderr_path());
  auto c_owner = std::make_unique<Client>(proxy.address());
  Client& c = *c_owner;
  ASSERT_TRUE(c.Set("a", "k", "1").status.ok());
  ASSERT_TRUE(c.Set("b", "k", "2").status.ok());
  pid_t pid_a = proxy.PluginPid("a");
  ASSERT_GT(pid_a, 0);

  // Load on b throughout.
  std::atomic<bool> stop{false};
  std::atomic<int> b_failures{0}, b_calls{0};
  std::thread load([&] {
    Client cb(proxy.address());
    while (!stop) {
      if (!cb.Get("b", "k").status.ok()) ++b_failures;
      ++b_calls;
      std::this_thread::sleep_for(5ms);
    }
  });

  ASSERT_EQ(kill(pid_a, SIGKILL), 0);
  bool saw_unavailable = false;
  auto deadline = std::chrono::steady_clock::now() + 3s;
  while (std::chrono::steady_clock::now() < deadline) {
    auto r = c.Get("a", "k");
    if (r.status.error_code() == grpc::UNAVAILABLE) {
      saw_unavailable = true;
      EXPECT_NE(r.status.error_message().find("namespace 'a'"), std::string::npos)
          << r.status.error_message();
      break;
    }
    std::this_thread::sleep_for(5ms);
  }
  EXPECT_TRUE(saw_unavailable);

  bool recovered = false;
  deadline = std::chrono::steady_clock::now() + 10s;
  while (std::chrono::steady_clock::now() < deadline) {
    auto r = c.Get("a", "k");
    if (r.status.ok()) {
      recovered = true;
      EXPECT_FALSE(r.get.found());  // a new memstore starts empty
      break;
    }
    std::this_thread::sleep_for(20ms);
  }
  EXPECT_TRUE(recovered);
  EXPECT_NE(proxy.PluginPid("a"), pid_a);
  stop = true;
  load.join();
  c_owner.reset();
  EXPECT_GT(b_calls.load(), 10);
  EXPECT_EQ(b_failures.load(), 0);
  std::string log = ReadFile(proxy.stderr_path());
  EXPECT_NE(log.find("namespace 'a': plugin prism-plugin-memstore was killed by signal 9"),
            std::string::npos)
      << log;
  EXPECT_EQ(proxy.Stop(), 0);
  if (!::testing::Test::HasFailure() && !std::getenv("PRISM_E2E_KEEP"))
    std::filesystem::remove_all(dir);
}

// The caller's deadline reaches the plugin (which reports what it received).
TEST(ProxyE2E, DeadlineTravelsToThePlugin) {
  std::string dir = MakeTempDir();
  Proxy proxy(
      dir, std::string("namespaces:\n  d: {plugin: {command: [") + PRISM_DEADLINE_PLUGIN + "]}}\n");
  ASSERT_TRUE(proxy.ok()) << ReadFile(proxy.stderr_path());
  auto r = Client(proxy.address()).Get("d", "k", "", 1500ms);
  ASSERT_TRUE(r.status.ok()) << r.status.error_message();
  ASSERT_NE(r.get.value(), "none");
  int left = std::stoi(r.get.value());
  EXPECT_GT(left, 1000);
  EXPECT_LE(left, 1600);  // grpc-timeout is encoded with a coarse, rounded-up unit
  EXPECT_EQ(proxy.Stop(), 0);
  if (!::testing::Test::HasFailure() && !std::getenv("PRISM_E2E_KEEP"))
    std::filesystem::remove_all(dir);
}

// x-trace-id names only a sampled trace. With tracing disabled the proxy
// still forwards the caller's context: a sampled caller's trace id comes
// back, an unsampled one's does not, and with no caller's trace there is no
// x-trace-id at all (never an all-zero id). x-request-id is always there.
TEST(ProxyE2E, TraceIdOnlyForASampledTrace) {
  const std::string yaml = "namespaces:\n  m: {plugin: {command: [prism-plugin-memstore]}}\n";
  // Calls on short-lived channels: an idle grpc++ sync channel still open at
  // SIGTERM only sees the proxy's GOAWAY on its 5 s backup poll, which would
  // slow Stop() down.
  auto expect_no_trace_id = [](const std::string& address) {
    auto r = Client(address).Set("m", "k", "v");
    ASSERT_TRUE(r.status.ok()) << r.status.error_message();
    EXPECT_EQ(r.trace_id, "");
    EXPECT_EQ(r.request_id.size(), 32u);
  };
  auto get_with_traceparent = [](const std::string& address, const char* traceparent) {
    auto stub = prism::v1::KeyValue::NewStub(
        grpc::CreateChannel(address, grpc::InsecureChannelCredentials()));
    grpc::ClientContext ctx;
    ctx.AddMetadata("traceparent", traceparent);
    prism::v1::GetRequest req;
    req.set_namespace_("m");
    req.set_key("k");
    prism::v1::GetResponse resp;
    EXPECT_TRUE(stub->Get(&ctx, req, &resp).ok());
    return std::pair(Md(ctx.GetServerInitialMetadata(), "x-trace-id"),
                     Md(ctx.GetServerInitialMetadata(), "x-request-id"));
  };

  std::string dir = MakeTempDir();
  Proxy proxy(dir, yaml, {}, {{"OTEL_SDK_DISABLED", "true"}});
  ASSERT_TRUE(proxy.ok()) << ReadFile(proxy.stderr_path());
  expect_no_trace_id(proxy.address());
  auto [sampled_trace, sampled_request] = get_with_traceparent(
      proxy.address(), "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
  EXPECT_EQ(sampled_trace, "4bf92f3577b34da6a3ce929d0e0e4736");
  auto [unsampled_trace, unsampled_request] = get_with_traceparent(
      proxy.address(), "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00");
  EXPECT_EQ(unsampled_trace, "");
  EXPECT_EQ(unsampled_request.size(), 32u);
  EXPECT_EQ(proxy.Stop(), 0);

  // The same with tracing on and a sampler that records nothing.
  std::string dir2 = MakeTempDir();
  Proxy never(dir2, yaml, {}, {{"OTEL_TRACES_SAMPLER", "always_off"}});
  ASSERT_TRUE(never.ok()) << ReadFile(never.stderr_path());
  expect_no_trace_id(never.address());
  EXPECT_EQ(never.Stop(), 0);
  if (!::testing::Test::HasFailure() && !std::getenv("PRISM_E2E_KEEP")) {
    std::filesystem::remove_all(dir);
    std::filesystem::remove_all(dir2);
  }
}

// Two callers taking turns, each on its own connection: the SERVER span's
// network.peer.* come from a block per caller once a proxy thread has seen
// the caller twice in a row (service.cc, PeerBlocks), as their own
// attributes otherwise. Whichever way a call went, its span has its own
// caller's address and port, its status, request id and namespace.
TEST(ProxyE2E, CallersTakingTurnsKeepTheirOwnPeerAttributes) {
  const std::string yaml = "namespaces:\n  m: {plugin: {command: [prism-plugin-memstore]}}\n";
  std::string dir = MakeTempDir();
  Proxy proxy(dir, yaml);
  ASSERT_TRUE(proxy.ok()) << ReadFile(proxy.stderr_path());
  struct Call {
    int caller;
    std::string ns;
    CallResult r;
  };
  std::vector<Call> calls;
  {
    Client callers[2] = {Client(proxy.address(), true), Client(proxy.address(), true)};
    for (int who : {0, 0, 0, 0, 1, 0, 1, 1, 1, 0, 0, 1}) {
      calls.push_back({who, "m", callers[who].Get("m", "k")});
    }
    // Errors end the span with their code's block: on a caller's blocks
    // (caller 0 made them above) or not.
    for (int who : {0, 0, 1, 1}) calls.push_back({who, "nope", callers[who].Get("nope", "k")});
  }
  EXPECT_EQ(proxy.Stop(), 0);
  std::string port[2];
  for (const Call& c : calls) {
    SCOPED_TRACE(c.r.trace_id);
    ASSERT_EQ(c.r.trace_id.size(), 32u);
    auto spans = TraceSpans(proxy.trace_file(), c.r.trace_id);
    const auto* server = Find(spans, "prism.v1.KeyValue/Get", "prism-proxy", 2);
    ASSERT_NE(server, nullptr);
    EXPECT_EQ(Attr(*server, "network.peer.address"), "127.0.0.1");
    const std::string p = Attr(*server, "network.peer.port");
    EXPECT_NE(p, "<missing>");
    if (port[c.caller].empty()) port[c.caller] = p;
    EXPECT_EQ(p, port[c.caller]) << "caller " << c.caller;
    EXPECT_EQ(Attr(*server, "rpc.grpc.status_code"), std::to_string(c.r.status.error_code()));
    EXPECT_EQ(Attr(*server, "rpc.method"), "Get");
    EXPECT_EQ(Attr(*server, "prism.operation"), "get");
    EXPECT_EQ(Attr(*server, "prism.request_id"), c.r.request_id);
    EXPECT_EQ(Attr(*server, "prism.namespace"), c.ns);
    // The above, rpc.system, rpc.system.name, rpc.service, server.address,
    // server.port and rpc.status_code; error.type for an error.
    EXPECT_EQ(server->attributes.size(), c.r.status.ok() ? 13u : 14u) << server->attributes.dump();
  }
  EXPECT_NE(port[0], port[1]);
  if (!::testing::Test::HasFailure() && !std::getenv("PRISM_E2E_KEEP")) {
    std::filesystem::remove_all(dir);
  }
}

// OTEL_SEMCONV_STABILITY_OPT_IN=rpc reaches the proxy and the plugin it
// launches: their RPC spans carry only the current names.
TEST(ProxyE2E, SemconvOptInKeepsOnlyCurrentRpcNames) {
  std::string dir = MakeTempDir();
  Proxy proxy(dir, "namespaces:\n  m: {plugin: {command: [prism-plugin-memstore]}}\n", {},
              {{"OTEL_SEMCONV_STABILITY_OPT_IN", "rpc"}});
  ASSERT_TRUE(proxy.ok()) << ReadFile(proxy.stderr_path());
  CallResult r = Client(proxy.address()).Set("m", "k", "v");
  ASSERT_TRUE(r.status.ok()) << r.status.error_message();
  ASSERT_EQ(r.trace_id.size(), 32u);
  EXPECT_EQ(proxy.Stop(), 0);
  auto spans = TraceSpans(proxy.trace_file(), r.trace_id);
  const auto* server = Find(spans, "prism.v1.KeyValue/Set", "prism-proxy", 2);
  const auto* client = Find(spans, "prism.v1.KeyValue/Set", "prism-proxy", 3);
  const auto* plugin = Find(spans, "prism.v1.KeyValue/Set", "prism-plugin-memstore", 2);
  ASSERT_TRUE(server && client && plugin) << spans.size() << " spans";
  for (const auto* s : {server, client, plugin}) {
    EXPECT_EQ(Attr(*s, "rpc.system.name"), "grpc");
    EXPECT_EQ(Attr(*s, "rpc.method"), "prism.v1.KeyValue/Set");
    EXPECT_EQ(Attr(*s, "rpc.status_code"), "OK");
    EXPECT_EQ(Attr(*s, "rpc.system"), "<missing>");
    EXPECT_EQ(Attr(*s, "rpc.service"), "<missing>");
    EXPECT_EQ(Attr(*s, "rpc.grpc.status_code"), "<missing>");
  }
  if (!::testing::Test::HasFailure() && !std::getenv("PRISM_E2E_KEEP"))
    std::filesystem::remove_all(dir);
}

// A plugin that stops answering (SIGSTOP) costs the caller its deadline,
// not more, and other calls work again once it resumes.
TEST(ProxyE2E, StalledPluginCostsTheCallerItsDeadline) {
  std::string dir = MakeTempDir();
  // Health checks far apart: the supervisor must not restart the plugin here.
  Proxy proxy(dir,
              "namespaces:\n  m: {plugin: {command: [prism-plugin-memstore]}}\n"
              "supervision: {health_interval: 60s}\n");
  ASSERT_TRUE(proxy.ok()) << ReadFile(proxy.stderr_path());
  {
    // Scoped: an idle sync channel left open would slow Stop() by 5 s.
    Client c(proxy.address());
    ASSERT_TRUE(c.Set("m", "k", "v").status.ok());
    pid_t plugin = proxy.PluginPid("m");
    ASSERT_GT(plugin, 0);
    ASSERT_TRUE(StopProcess(plugin, 5s));
    auto start = std::chrono::steady_clock::now();
    auto r = c.Get("m", "k", "", 800ms);
    auto took = std::chrono::steady_clock::now() - start;
    kill(plugin, SIGCONT);
    EXPECT_EQ(r.status.error_code(), grpc::DEADLINE_EXCEEDED) << r.status.error_message();
    EXPECT_LT(took, 3s);
    bool recovered = false;
    for (int i = 0; i < 50 && !recovered; ++i) {
      recovered = c.Get("m", "k").status.ok();
      if (!recovered) std::this_thread::sleep_for(100ms);
    }
    EXPECT_TRUE(recovered);
  }
  EXPECT_EQ(proxy.Stop(), 0);
  if (!::testing::Test::HasFailure() && !std::getenv("PRISM_E2E_KEEP"))
    std::filesystem::remove_all(dir);
}

// The proxy's own grpc.health.v1 service answers next to the raw KeyValue
// methods and the catch-all for unknown methods.
TEST(ProxyE2E, AnswersHealthChecks) {
  std::string dir = MakeTempDir();
  Proxy proxy(dir, "namespaces:\n  m: {plugin: {command: [prism-plugin-memstore]}}\n");
  ASSERT_TRUE(proxy.ok()) << ReadFile(proxy.stderr_path());
  grpc::GenericStub generic(
      grpc::CreateChannel(proxy.address(), grpc::InsecureChannelCredentials()));
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + 5s);
  grpc::Slice empty;  // HealthCheckRequest{service: ""} is zero bytes
  grpc::ByteBuffer req(&empty, 1), resp;
  std::promise<grpc::Status> done;
  generic.UnaryCall(&ctx, "/grpc.health.v1.Health/Check", grpc::StubOptions(), &req, &resp,
                    [&](grpc::Status s) { done.set_value(s); });
  grpc::Status st = done.get_future().get();
  ASSERT_TRUE(st.ok()) << st.error_code() << " " << st.error_message();
  std::vector<grpc::Slice> slices;
  ASSERT_TRUE(resp.Dump(&slices).ok());
  std::string bytes;
  for (const auto& sl : slices) bytes.append(reinterpret_cast<const char*>(sl.begin()), sl.size());
  EXPECT_EQ(bytes, std::string("\x08\x01", 2));  // status: SERVING
  EXPECT_EQ(proxy.Stop(), 0);
  if (!::testing::Test::HasFailure() && !std::getenv("PRISM_E2E_KEEP"))
    std::filesystem::remove_all(dir);
}

// With --tls-cert/--tls-key the proxy serves TLS only: a client that trusts
// the certificate works, a plaintext one does not.
TEST(ProxyE2E, ServesTlsWithACertificate) {
  std::string dir = MakeTempDir();
  auto gen = RunProcess(
      "/usr/bin/openssl",
      {"req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
       "-keyout", dir + "/key.pem", "-out", dir + "/cert.pem", "-days", "1", "-subj",
       "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"});
  ASSERT_EQ(gen.exit_code, 0) << "openssl (Debian package openssl) failed: " << gen.err;
  // A key of another pair, and a file that is no certificate: refused at
  // start (and by --check) with the key named, exit 2.
  auto other =
      RunProcess("/usr/bin/openssl", {"genpkey", "-algorithm", "EC", "-pkeyopt",
                                      "ec_paramgen_curve:prime256v1", "-out", dir + "/other.pem"});
  ASSERT_EQ(other.exit_code, 0) << other.err;
  WriteFile(dir + "/empty.pem", "not a certificate\n");
  for (const auto& [cert, key, expect] :
       std::vector<std::tuple<std::string, std::string, std::string>>{
           {"cert.pem", "other.pem", "tls.key_file: the key does not belong"},
           {"empty.pem", "key.pem", "tls.cert_file: no PEM certificate"}}) {
    auto r = RunProcess(ProxyBinary(),
                        {"--check", "--tls-cert", dir + "/" + cert, "--tls-key", dir + "/" + key});
    EXPECT_EQ(r.exit_code, 2) << r.err;
    EXPECT_NE(r.err.find(expect), std::string::npos) << r.err;
  }
  Proxy proxy(dir, "namespaces:\n  m: {plugin: {command: [prism-plugin-memstore]}}\n",
              {"--tls-cert", dir + "/cert.pem", "--tls-key", dir + "/key.pem"});
  ASSERT_TRUE(proxy.ok()) << ReadFile(proxy.stderr_path());
  EXPECT_NE(proxy.banner().find("(TLS)"), std::string::npos) << proxy.banner();

  grpc::SslCredentialsOptions ssl;
  ssl.pem_root_certs = ReadFile(dir + "/cert.pem");
  grpc::ChannelArguments args;
  args.SetSslTargetNameOverride("localhost");
  auto stub = prism::v1::KeyValue::NewStub(
      grpc::CreateCustomChannel(proxy.address(), grpc::SslCredentials(ssl), args));
  {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + 5s);
    prism::v1::SetRequest req;
    req.set_namespace_("m");
    req.set_key("k");
    req.set_value("over tls");
    prism::v1::SetResponse resp;
    grpc::Status st = stub->Set(&ctx, req, &resp);
    EXPECT_TRUE(st.ok()) << st.error_message();
  }
  {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + 5s);
    prism::v1::GetRequest req;
    req.set_namespace_("m");
    req.set_key("k");
    prism::v1::GetResponse resp;
    grpc::Status st = stub->Get(&ctx, req, &resp);
    EXPECT_TRUE(st.ok()) << st.error_message();
    EXPECT_EQ(resp.value(), "over tls");
  }
  auto plain = Client(proxy.address()).Get("m", "k", "", 2s);
  EXPECT_FALSE(plain.status.ok());
  stub.reset();  // an idle sync channel left open would slow Stop() by 5 s
  EXPECT_EQ(proxy.Stop(), 0);
  if (!::testing::Test::HasFailure() && !std::getenv("PRISM_E2E_KEEP"))
    std::filesystem::remove_all(dir);
}

// An address that cannot be bound is named with the reason before any
// plugin starts (it was gRPC's "cannot listen ... (address in use or
// invalid?)" after the plugins had been launched).
TEST(ProxyE2E, ListenFailureIsPreciseAndEarly) {
  std::string dir = MakeTempDir();
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(a);
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0);
  ASSERT_EQ(listen(fd, 1), 0);
  ASSERT_EQ(getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len), 0);
  const std::string taken = "127.0.0.1:" + std::to_string(ntohs(a.sin_port));
  auto r = RunProcess(ProxyBinary(), {"--listen", taken}, {{"PRISM_DATA_DIR", dir}});
  close(fd);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("cannot listen on " + taken + ": Address already in use"), std::string::npos)
      << r.err;
  EXPECT_EQ(r.err.find("started prism-plugin"), std::string::npos) << r.err;
  r = RunProcess(ProxyBinary(), {"--listen", "unix://" + dir + "/missing/proxy.sock"},
                 {{"PRISM_DATA_DIR", dir}});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("the directory '" + dir + "/missing' does not exist"), std::string::npos)
      << r.err;
}

// Invalid configuration: exit code 2 and a message naming the key and line.
TEST(ProxyE2E, InvalidConfigExitsTwoWithKeyAndLine) {
  std::string dir = MakeTempDir();
  WriteFile(dir + "/bad.yaml",
            "listen: 127.0.0.1:0\n"
            "namespaces:\n"
            "  a:\n"
            "    plugin:\n"
            "      comand: [prism-plugin-memstore]\n");
  auto r = RunProcess(ProxyBinary(), {"--config", dir + "/bad.yaml"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find(dir + "/bad.yaml:5:7: namespaces.a.plugin.comand: unknown key"),
            std::string::npos)
      << r.err;
  WriteFile(dir + "/bad2.yaml",
            "namespaces:\n  a: {plugin: {command: x}}\ntokens:\n  - name: t\n"
            "    sha256: 1234\n    rights: {a: read}\n");
  r = RunProcess(ProxyBinary(), {"--config", dir + "/bad2.yaml"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("bad2.yaml:5:13: tokens[0].sha256"), std::string::npos) << r.err;
  r = RunProcess(ProxyBinary(), {"--config", dir + "/missing.yaml"});
  EXPECT_EQ(r.exit_code, 2);
  r = RunProcess(ProxyBinary(), {"--no-such-flag"});
  EXPECT_EQ(r.exit_code, 2);
  r = RunProcess(ProxyBinary(), {"--listen", "127.0.0.1:99999"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("--listen '127.0.0.1:99999': the port must be a number from 0 to 65535"),
            std::string::npos)
      << r.err;
  r = RunProcess(ProxyBinary(), {"--config", dir + "/bad2.yaml", "--check"});
  EXPECT_EQ(r.exit_code, 2);
  // A plugin executable that cannot be found: the line of its command, also
  // under --check.
  WriteFile(dir + "/bad3.yaml",
            "listen: 127.0.0.1:0\n"
            "namespaces:\n"
            "  a:\n"
            "    plugin:\n"
            "      command: [prism-plugin-nonexistent, --flag]\n");
  for (bool check : {false, true}) {
    std::vector<std::string> args = {"--config", dir + "/bad3.yaml"};
    if (check) args.push_back("--check");
    r = RunProcess(ProxyBinary(), args);
    EXPECT_EQ(r.exit_code, 2) << r.err;
    EXPECT_NE(r.err.find(dir + "/bad3.yaml:5:16: namespaces.a.plugin.command: "
                               "'prism-plugin-nonexistent' not found"),
              std::string::npos)
        << r.err;
  }
  if (!::testing::Test::HasFailure() && !std::getenv("PRISM_E2E_KEEP"))
    std::filesystem::remove_all(dir);
}

// A trace file that cannot be written stops the proxy at start (exit 1, the
// path and the reason), instead of failing every export once it serves.
TEST(ProxyE2E, UnwritableTraceFileFailsAtStart) {
  std::string dir = MakeTempDir();
  auto r = RunProcess(ProxyBinary(), {},  // the embedded default
                      {{"PRISM_DATA_DIR", dir}, {"PRISM_TRACE_FILE", "/proc/prism-test/t.jsonl"}});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("cannot write the trace file '/proc/prism-test/t.jsonl'"), std::string::npos)
      << r.err;
  EXPECT_EQ(r.out.find("listening"), std::string::npos) << r.out;
}

// Off loopback without configured tokens, the proxy generates one and prints it.
TEST(ProxyE2E, TokenRequiredOffLoopback) {
  std::string dir = MakeTempDir();
  Proxy proxy(dir, "namespaces:\n  default: {plugin: {command: [prism-plugin-memstore]}}\n",
              {"--listen", "0.0.0.0:0"});
  ASSERT_TRUE(proxy.ok()) << ReadFile(proxy.stderr_path());
  std::smatch m;
  std::regex re("export PRISM_TOKEN=(\\S+)");
  ASSERT_TRUE(std::regex_search(proxy.banner(), m, re)) << proxy.banner();
  std::string token = m[1];
  std::string port = proxy.address().substr(proxy.address().rfind(':') + 1);
  {
    // (Closed before the stop: an idle synchronous client does not answer the
    // server's GOAWAY ping, which makes grpc's shutdown wait ~5 s.)
    Client c("127.0.0.1:" + port);
    EXPECT_EQ(c.Get("default", "k").status.error_code(), grpc::UNAUTHENTICATED);
    EXPECT_TRUE(c.Get("default", "k", token).status.ok());
  }
  EXPECT_EQ(proxy.Stop(), 0);
  if (!::testing::Test::HasFailure() && !std::getenv("PRISM_E2E_KEEP"))
    std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace prism::e2e

namespace prism::e2e {
namespace {

// Interop: a client instrumented with the official OpenTelemetry JS SDK
// (tools/js-grpc) calls the proxy; the proxy's SERVER span continues the JS
// client's trace (same trace id, parent = the JS CLIENT span).
TEST(ProxyInterop, ServerSpanContinuesOpenTelemetryJsTrace) {
  std::string tool = std::string(PRISM_SOURCE_DIR) + "/tools/js-grpc";
  // The interop proof must not pass by skipping: a missing peer is a failure.
  ASSERT_TRUE(std::filesystem::exists(tool + "/node_modules/@opentelemetry/sdk-trace-node"))
      << "tools/js-grpc is not installed (make interop-deps)";
  std::string dir = MakeTempDir();
  Proxy proxy(dir, "namespaces:\n  default: {plugin: {command: [prism-plugin-memstore]}}\n");
  ASSERT_TRUE(proxy.ok()) << ReadFile(proxy.stderr_path());
  auto r = RunProcess("/usr/bin/env", {"node", tool + "/kv_client.js", proxy.address(),
                                       R"(Set={"namespace":"default","key":"js","value":"aGk="})",
                                       R"(Get={"namespace":"default","key":"js"})", "--metadata",
                                       "x-request-id=js-req-1"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  json out = json::parse(r.out);
  ASSERT_EQ(out["calls"].size(), 2u) << r.out;
  const json& get = out["calls"][1];
  EXPECT_EQ(get["code"], 0) << get.dump();
  std::string trace_id = get["trace_id"], span_id = get["span_id"];
  ASSERT_EQ(trace_id.size(), 32u);
  EXPECT_EQ(proxy.Stop(), 0);

  auto spans = TraceSpans(proxy.trace_file(), trace_id);
  const auto* server = Find(spans, "prism.v1.KeyValue/Get", "prism-proxy", 2);
  ASSERT_NE(server, nullptr) << "no proxy SERVER span in the JS client's trace " << trace_id;
  EXPECT_EQ(server->parent_span_id, span_id);
  EXPECT_EQ(Attr(*server, "prism.request_id"), "js-req-1");
  const auto* plugin = Find(spans, "prism.v1.KeyValue/Get", "prism-plugin-memstore", 2);
  ASSERT_NE(plugin, nullptr);
  const auto* client = Find(spans, "prism.v1.KeyValue/Get", "prism-proxy", 3);
  ASSERT_NE(client, nullptr);
  EXPECT_EQ(plugin->parent_span_id, client->span_id);
  if (!::testing::Test::HasFailure() && !std::getenv("PRISM_E2E_KEEP")) {
    std::filesystem::remove_all(dir);
  }
}

}  // namespace
}  // namespace prism::e2e
