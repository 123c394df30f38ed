// Adaptive sampling end to end (docs/sampling.md): the real prism-proxy with
// `sampler: adaptive`, real plugin processes (prism_test_adaptive_plugin,
// built on plugin_core), the trace file both write, and an OTLP receiver
// whose decoding is the OpenTelemetry JS project's (tools/interop).

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <signal.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <future>
#include <map>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>
#include <thread>

#include "auth.h"
#include "prism/v1/kv.grpc.pb.h"
#include "support.h"
#include "trace_file.h"

namespace prism::e2e {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;
using prism::cli::SpanRecord;

constexpr int kServer = 2, kClient = 3, kInternal = 1;

std::string Md(const std::multimap<grpc::string_ref, grpc::string_ref>& md, const char* key) {
  auto it = md.find(key);
  return it == md.end() ? "" : std::string(it->second.data(), it->second.size());
}

struct Result {
  grpc::Status status;
  std::string trace_id;  // x-trace-id, initial or trailing metadata
};

class Client {
 public:
  explicit Client(const std::string& addr)
      : stub_(prism::v1::KeyValue::NewStub(
            grpc::CreateChannel(addr, grpc::InsecureChannelCredentials()))) {}
  Result Get(const std::string& ns, const std::string& key, std::chrono::milliseconds deadline = 5s,
             const std::string& traceparent = "", const std::string& token = "") {
    grpc::ClientContext ctx;
    // 0: no deadline (the proxy's limits.default_deadline applies).
    if (deadline.count() > 0) ctx.set_deadline(std::chrono::system_clock::now() + deadline);
    if (!traceparent.empty()) ctx.AddMetadata("traceparent", traceparent);
    if (!token.empty()) ctx.AddMetadata("authorization", "Bearer " + token);
    prism::v1::GetRequest req;
    req.set_namespace_(ns);
    req.set_key(key);
    prism::v1::GetResponse resp;
    Result r;
    r.status = stub_->Get(&ctx, req, &resp);
    r.trace_id = Md(ctx.GetServerInitialMetadata(), "x-trace-id");
    if (r.trace_id.empty()) r.trace_id = Md(ctx.GetServerTrailingMetadata(), "x-trace-id");
    return r;
  }

 private:
  std::unique_ptr<prism::v1::KeyValue::Stub> stub_;
};

std::string PluginPath() { return PRISM_ADAPTIVE_PLUGIN; }

// `slow`: 60 s unless the test is about latency - a loaded CI machine has
// 100 ms calls, and those would be kept for being slow.
std::string AdaptiveConfig(const std::string& extra_tracing = "", const std::string& extra = "",
                           const std::string& slow = "60s") {
  return "tracing:\n"
         "  sampler: adaptive\n"
         "  adaptive: {ratio: 0.01, slow: " +
         slow + extra_tracing +
         "}\n"
         "namespaces:\n"
         "  a: {plugin: {command: [" +
         PluginPath() + "]}}\n" + extra;
}

// Spans of the trace file grouped by trace id.
std::map<std::string, std::vector<SpanRecord>> FileTraces(const std::string& path) {
  std::map<std::string, std::vector<SpanRecord>> out;
  auto f = prism::cli::TraceFile::Load(path);
  if (!f.ok()) return out;
  for (const auto& s : f->Summaries()) out[s.trace_id] = *f->Spans(s.trace_id);
  return out;
}

std::string Attr(const SpanRecord& s, const std::string& key) {
  if (!s.attributes.contains(key)) return "";
  const auto& v = s.attributes[key];
  return v.is_string() ? v.get<std::string>() : v.dump();
}

const SpanRecord* Find(const std::vector<SpanRecord>& spans, const std::string& service, int kind,
                       const std::string& name = "") {
  for (const auto& s : spans) {
    if (s.service == service && s.kind == kind && (name.empty() || s.name == name)) return &s;
  }
  return nullptr;
}

// A proxied Get's complete trace: the proxy's SERVER span with its auth,
// routing and CLIENT children, the plugin's SERVER span under that CLIENT
// span and the plugin's "work" under it - each exactly once, links exact.
void ExpectCompleteGet(const std::vector<SpanRecord>& spans, const std::string& why) {
  SCOPED_TRACE(why);
  ASSERT_EQ(spans.size(), 6u);
  const SpanRecord* server = Find(spans, "prism-proxy", kServer);
  const SpanRecord* auth = Find(spans, "prism-proxy", kInternal, "prism.auth.verify");
  const SpanRecord* route = Find(spans, "prism-proxy", kInternal, "prism.routing.select_plugin");
  const SpanRecord* client = Find(spans, "prism-proxy", kClient);
  const SpanRecord* pserver = Find(spans, "prism_test_adaptive_plugin", kServer);
  const SpanRecord* work = Find(spans, "prism_test_adaptive_plugin", kInternal, "work");
  ASSERT_TRUE(server && auth && route && client && pserver && work);
  EXPECT_EQ(auth->parent_span_id, server->span_id);
  EXPECT_EQ(route->parent_span_id, server->span_id);
  EXPECT_EQ(client->parent_span_id, server->span_id);
  EXPECT_EQ(pserver->parent_span_id, client->span_id);
  EXPECT_EQ(work->parent_span_id, pserver->span_id);
}

// Keeps everything the proxy and plugin logged, for a failing assertion.
std::string Log(const Proxy& p) { return ReadFile(p.stderr_path()); }

// The low 56 bits of a hex trace id.
uint64_t Randomness(const std::string& trace_id) {
  return std::stoull(trace_id.substr(18, 14), nullptr, 16);
}

// 2^56 - round(0.01 * 2^56): the 1 % threshold of the consistent rule.
constexpr uint64_t kThreshold1Percent = 0xfd70a3d70a3d71ULL;

std::string Traceparent(uint64_t randomness, bool sampled) {
  char id[33];
  std::snprintf(id, sizeof(id), "4bf92f3577b34da6a3%014llx",
                static_cast<unsigned long long>(randomness));
  return std::string("00-") + id + "-00f067aa0ba902b7-" + (sampled ? "03" : "02");
}

// A caller's unsampled context whose trace id is far below the 1 % share:
// what such a request's trace becomes is decided by errors and latency only.
std::string Unsampled(uint64_t randomness) { return Traceparent(randomness, false); }

// An OTLP/HTTP receiver that is not ours: tools/interop/receiver.js decodes
// with the OpenTelemetry JS project's generated protobuf code.
class Receiver {
 public:
  Receiver() : out_(MakeTempDir() + "/otlp.jsonl") {
    proc_ = std::make_unique<Process>(
        "/usr/bin/env", std::vector<std::string>{
                            "node", std::string(PRISM_SOURCE_DIR) + "/tools/interop/receiver.js",
                            "--http-port", "0", "--grpc-port", "0", "--out", out_});
    std::string line = proc_->WaitForLine("READY", 20s);
    std::smatch m;
    std::regex re("http=(\\d+)");
    if (std::regex_search(line, m, re)) port_ = std::stoi(m[1]);
  }
  int port() const { return port_; }
  // trace id -> spans (name, span id, parent id) received over OTLP.
  std::map<std::string, std::vector<json>> Traces() const {
    std::map<std::string, std::vector<json>> out;
    std::ifstream in(out_);
    std::string line;
    while (std::getline(in, line)) {
      json j = json::parse(line, nullptr, false);
      if (j.is_discarded()) continue;
      for (const auto& rs : j["decoded"].value("resourceSpans", json::array())) {
        for (const auto& ss : rs.value("scopeSpans", json::array())) {
          for (const auto& s : ss.value("spans", json::array())) {
            out[s.value("traceId", "")].push_back(s);
          }
        }
      }
    }
    return out;
  }

 private:
  std::string out_;
  int port_ = 0;
  std::unique_ptr<Process> proc_;
};

std::map<std::string, std::string> OtlpEnv(const Receiver& r) {
  return {{"OTEL_TRACES_EXPORTER", "file,otlp"},
          {"OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"},
          {"OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:" + std::to_string(r.port())}};
}

// ---------------------------------------------------------------------------

// N normal requests: the kept share is inside binomial bounds of 1 %, every
// kept trace is a ratio sample by the threshold rule and complete, and the
// dropped ones left nothing behind. The counters say the same.
TEST(AdaptiveE2E, NormalTrafficKeepsTheRatioShareComplete) {
  std::string dir = MakeTempDir();
  Receiver receiver;
  ASSERT_GT(receiver.port(), 0) << "is tools/interop/install.sh (make interop-deps) done?";
  // Latency out of the way (a loaded CI machine has 100 ms calls): this
  // test is about the share.
  Proxy proxy(dir, AdaptiveConfig(), {}, OtlpEnv(receiver));
  ASSERT_TRUE(proxy.ok()) << Log(proxy);
  // Dropped before the proxy stops: an idle grpc++ client holds its drain.
  auto client = std::make_unique<Client>(proxy.address());
  Client& c = *client;
  constexpr int kN = 3000;
  int with_id = 0;
  for (int i = 0; i < kN; ++i) {
    Result r = c.Get("a", "k" + std::to_string(i));
    ASSERT_TRUE(r.status.ok()) << r.status.error_message();
    with_id += !r.trace_id.empty();
  }
  // An operator reads the counters without stopping anything: SIGUSR1.
  proxy.process().Signal(SIGUSR1);
  std::string live;
  for (int i = 0; i < 100 && live.find("triggers to plugins") == std::string::npos; ++i) {
    std::this_thread::sleep_for(20ms);
    live = Log(proxy);
  }
  EXPECT_NE(live.find("adaptive sampling: traces=" + std::to_string(kN) + " kept(parent=0"),
            std::string::npos)
      << live;
  client.reset();
  ASSERT_EQ(proxy.Stop(), 0) << Log(proxy);
  auto traces = FileTraces(proxy.trace_file());
  // Binomial(3000, 0.01): mean 30, sd 5.45; [3, 58] is mean +- 5 sd.
  EXPECT_GE(traces.size(), 3u);
  EXPECT_LE(traces.size(), 58u);
  EXPECT_EQ(static_cast<size_t>(with_id), traces.size());
  auto otlp = receiver.Traces();
  for (const auto& [id, spans] : traces) {
    EXPECT_GE(Randomness(id), kThreshold1Percent) << id;
    ExpectCompleteGet(spans, "trace " + id);
    const SpanRecord* server = Find(spans, "prism-proxy", kServer);
    ASSERT_TRUE(server);
    EXPECT_EQ(Attr(*server, "prism.sampling.reason"), "ratio");
    EXPECT_EQ(otlp[id].size(), 6u) << id;  // the same complete trace over OTLP
  }
  EXPECT_EQ(otlp.size(), traces.size());
  std::string log = Log(proxy);
  EXPECT_NE(log.find("adaptive sampling: traces=" + std::to_string(kN) +
                     " kept(parent=0 ratio=" + std::to_string(traces.size()) +
                     " error=0 slow=0 trigger=0) dropped=" + std::to_string(kN - traces.size())),
            std::string::npos)
      << log;
}

// The caller's decision: sampled=1 is honoured (reason parent) whatever the
// trace id; sampled=0 gets the consistent 1 % rule at the threshold exactly.
TEST(AdaptiveE2E, CallersFlagHonouredAndThresholdRuleForFixedIds) {
  std::string dir = MakeTempDir();
  Proxy proxy(dir, AdaptiveConfig());
  ASSERT_TRUE(proxy.ok()) << Log(proxy);
  // Dropped before the proxy stops: an idle grpc++ client holds its drain.
  auto client = std::make_unique<Client>(proxy.address());
  Client& c = *client;
  struct Case {
    uint64_t r;
    bool sampled, kept;
    const char* reason;
  } cases[] = {
      {1, true, true, "parent"},
      {0, false, false, ""},
      {kThreshold1Percent - 1, false, false, ""},
      {kThreshold1Percent, false, true, "ratio"},
      {kThreshold1Percent + 1, false, true, "ratio"},
      {(uint64_t{1} << 56) - 1, false, true, "ratio"},
      {0x123456789abcde, false, false, ""},
  };
  for (const auto& k : cases) {
    Result r = c.Get("a", "x", 5s, Traceparent(k.r, k.sampled));
    ASSERT_TRUE(r.status.ok());
    EXPECT_EQ(!r.trace_id.empty(), k.kept) << std::hex << k.r;
  }
  client.reset();
  ASSERT_EQ(proxy.Stop(), 0);
  auto traces = FileTraces(proxy.trace_file());
  for (const auto& k : cases) {
    char id[33];
    std::snprintf(id, sizeof(id), "4bf92f3577b34da6a3%014llx",
                  static_cast<unsigned long long>(k.r));
    SCOPED_TRACE(id);
    ASSERT_EQ(traces.count(id), k.kept ? 1u : 0u);
    if (!k.kept) continue;
    ExpectCompleteGet(traces[id], id);
    EXPECT_EQ(Attr(*Find(traces[id], "prism-proxy", kServer), "prism.sampling.reason"), k.reason);
  }
}

// Every error is kept, complete, with reason "error": one the plugin returns,
// one only the plugin saw (its span failed, the call succeeded: the plugin's
// traceresponse tells the proxy), the proxy's own (unknown namespace, no
// token), and a deadline the plugin overran (its spans end after the
// proxy's decision and still arrive).
TEST(AdaptiveE2E, EveryErrorIsKeptWhole) {
  std::string dir = MakeTempDir();
  Receiver receiver;
  ASSERT_GT(receiver.port(), 0) << "is tools/interop/install.sh (make interop-deps) done?";
  // One token that may read every namespace.
  std::string token = "adaptive-test-token-0123456789abcdef";
  Proxy proxy(
      dir,
      AdaptiveConfig("", "  b: {plugin: {command: [" + PluginPath() +
                             "], settings: {delay-ms: \"400\"}}}\n"
                             "auth: {mode: required}\n"
                             // The deadline request sets none, so only the proxy's
                             // timer ends it: with a caller's deadline, the caller's
                             // cancel and the proxy's timer race, and the call ends
                             // CANCELLED or DEADLINE_EXCEEDED by chance.
                             "limits: {default_deadline: 100ms}\n"
                             "tokens:\n"
                             "  - name: t\n"
                             "    sha256: " +
                             prism::proxy::Sha256Hex(token) + "\n    rights: {\"*\": read}\n"),
      {}, OtlpEnv(receiver));
  ASSERT_TRUE(proxy.ok()) << Log(proxy);
  // Dropped before the proxy stops: an idle grpc++ client holds its drain.
  auto client = std::make_unique<Client>(proxy.address());
  Client& c = *client;
  Result fail = c.Get("a", "fail-1", 5s, Unsampled(0x21), token);
  EXPECT_EQ(fail.status.error_code(), grpc::StatusCode::INTERNAL);
  Result inner = c.Get("a", "inner-1", 5s, Unsampled(0x22), token);
  EXPECT_TRUE(inner.status.ok());
  Result unknown = c.Get("nope", "k", 5s, Unsampled(0x23), token);
  EXPECT_EQ(unknown.status.error_code(), grpc::StatusCode::NOT_FOUND);
  Result anon = c.Get("a", "k", 5s, Unsampled(0x24), "");
  EXPECT_EQ(anon.status.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  // The caller's own timer ends this call, so it gets no x-trace-id: it
  // names the trace itself (unsampled, far below the 1 % threshold).
  Result late = c.Get("b", "slow-1", 100ms, Traceparent(6, false), token);
  EXPECT_EQ(late.status.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);
  late.trace_id = "4bf92f3577b34da6a300000000000006";
  Result normal = c.Get("a", "fine", 5s, Traceparent(5, false), token);
  EXPECT_TRUE(normal.status.ok());
  EXPECT_TRUE(normal.trace_id.empty());
  std::this_thread::sleep_for(600ms);  // the overrun plugin call ends
  client.reset();
  ASSERT_EQ(proxy.Stop(), 0);
  auto traces = FileTraces(proxy.trace_file());
  auto otlp = receiver.Traces();
  for (const Result* r : {&fail, &inner, &unknown, &anon, &late}) {
    ASSERT_FALSE(r->trace_id.empty()) << r->status.error_message();
    ASSERT_EQ(traces.count(r->trace_id), 1u) << r->status.error_message();
    const auto& spans = traces[r->trace_id];
    const SpanRecord* server = Find(spans, "prism-proxy", kServer);
    ASSERT_TRUE(server);
    EXPECT_EQ(Attr(*server, "prism.sampling.reason"), "error");
    // The same spans, the same parents, over OTLP.
    std::set<std::pair<std::string, std::string>> file_links, otlp_links;
    for (const auto& sp : spans) file_links.insert({sp.span_id, sp.parent_span_id});
    for (const auto& sp : otlp[r->trace_id]) {
      otlp_links.insert({sp.value("spanId", ""), sp.value("parentSpanId", "")});
    }
    EXPECT_EQ(file_links, otlp_links) << r->trace_id;
  }
  ExpectCompleteGet(traces[fail.trace_id], "plugin error");
  ExpectCompleteGet(traces[inner.trace_id], "error only the plugin saw");
  ExpectCompleteGet(traces[late.trace_id], "deadline exceeded");
  // The proxy's own refusals never reached a plugin: server + auth (+ routing).
  EXPECT_EQ(traces[unknown.trace_id].size(), 3u);
  EXPECT_EQ(traces[anon.trace_id].size(), 2u);
  EXPECT_EQ(traces.count("4bf92f3577b34da6a300000000000005"), 0u);
  // The plugin kept "inner" itself: no trigger for it. fail (the plugin's
  // error span kept it) likewise; the deadline needed one.
  std::string log = Log(proxy);
  EXPECT_NE(log.find("sampling triggers to plugins: sent=1 failed=0 skipped=0"), std::string::npos)
      << log;
}

// Slow traces are kept whole, whichever side was slow: the plugin (its own
// span took the time) or only the proxy (the plugin was stopped before it
// read the request; its own spans are fast, and the proxy's trigger makes it
// keep them).
TEST(AdaptiveE2E, SlowRequestsAreKeptWholeOnEitherSide) {
  std::string dir = MakeTempDir();
  // Namespace `lax` has its own, higher threshold (its plugin gets it too).
  Proxy proxy(dir,
              AdaptiveConfig("", "  lax: {plugin: {command: [" + PluginPath() + "]}, slow: 10s}\n",
                             "100ms"));
  ASSERT_TRUE(proxy.ok()) << Log(proxy);
  // Dropped before the proxy stops: an idle grpc++ client holds its drain.
  auto client = std::make_unique<Client>(proxy.address());
  Client& c = *client;
  Result warm = c.Get("a", "warm");
  ASSERT_TRUE(warm.status.ok());
  Result plugin_slow = c.Get("a", "slow-1", 5s, Unsampled(0x31));
  ASSERT_TRUE(plugin_slow.status.ok());
  EXPECT_FALSE(plugin_slow.trace_id.empty());
  Result lax = c.Get("lax", "slow-1", 5s, Traceparent(8, false));
  ASSERT_TRUE(lax.status.ok());
  EXPECT_TRUE(lax.trace_id.empty());  // 150 ms is under lax's 10 s

  pid_t plugin = proxy.PluginPid("a");
  ASSERT_GT(plugin, 0);
  ASSERT_EQ(kill(plugin, SIGSTOP), 0);
  auto sent = std::chrono::steady_clock::now();
  auto pending = std::async(std::launch::async,
                            [&] { return c.Get("a", "fast-but-waited", 5s, Unsampled(0x32)); });
  // Ample for the call to reach the proxy even on a loaded machine (at
  // 400 ms a CI run under two compile jobs once started it too late).
  std::this_thread::sleep_for(1000ms);
  ASSERT_EQ(kill(plugin, SIGCONT), 0);
  Result proxy_slow = pending.get();
  EXPECT_GE(std::chrono::steady_clock::now() - sent, 900ms);
  ASSERT_TRUE(proxy_slow.status.ok()) << proxy_slow.status.error_message();
  EXPECT_FALSE(proxy_slow.trace_id.empty());
  client.reset();
  ASSERT_EQ(proxy.Stop(), 0);

  auto traces = FileTraces(proxy.trace_file());
  for (const Result* r : {&plugin_slow, &proxy_slow}) {
    ASSERT_EQ(traces.count(r->trace_id), 1u);
    ExpectCompleteGet(traces[r->trace_id], r->trace_id);
    const SpanRecord* server = Find(traces[r->trace_id], "prism-proxy", kServer);
    EXPECT_EQ(Attr(*server, "prism.sampling.reason"), "slow");
    EXPECT_GE(server->end_ns - server->start_ns, 100'000'000u);
  }
  // Only the proxy saw the second one slow.
  const SpanRecord* work =
      Find(traces[proxy_slow.trace_id], "prism_test_adaptive_plugin", kInternal);
  ASSERT_TRUE(work);
  EXPECT_LT(work->end_ns - work->start_ns, 50'000'000u);
  EXPECT_EQ(traces.count("4bf92f3577b34da6a300000000000008"), 0u);
}

// Deferred recording (docs/sampling.md): the proxy records nothing of an
// undecided call while it runs, nor the plugin of its SERVER span, and both
// record them when the trace is kept. A replayed trace must say exactly what
// a live-recorded one says: the same requests through an always_on proxy
// and an adaptive one give the same spans in both processes - names, kinds,
// parents, attributes, statuses, exception events - the proxy's with times
// inside its SERVER span's.
TEST(AdaptiveE2E, ReplayedSpansSayWhatLiveOnesSay) {
  std::string token = "adaptive-test-token-0123456789abcdef";
  std::string extra = "  b: {plugin: {command: [" + PluginPath() +
                      "], settings: {delay-ms: \"400\"}}}\n"
                      "auth: {mode: required}\n"
                      // The deadline request sets none, so only the proxy's
                      // timer ends it: with a caller's deadline, the caller's
                      // cancel and the proxy's timer race, and the call ends
                      // CANCELLED or DEADLINE_EXCEEDED by chance.
                      "limits: {default_deadline: 100ms}\n"
                      "tokens:\n"
                      "  - name: t\n"
                      "    sha256: " +
                      prism::proxy::Sha256Hex(token) + "\n    rights: {\"*\": read}\n";
  // Per request: the proxy's spans, keyed by name and kind, as comparable text.
  using Shape = std::map<std::string, std::string>;
  auto run = [&](const std::string& yaml) {
    std::string dir = MakeTempDir();
    Proxy proxy(dir, yaml);
    EXPECT_TRUE(proxy.ok()) << Log(proxy);
    std::vector<Result> results;
    {
      Client c(proxy.address());
      results.push_back(c.Get("a", "fail-1", 5s, Unsampled(0x41), token));   // plugin error
      results.push_back(c.Get("nope", "k", 5s, Unsampled(0x42), token));     // unknown namespace
      results.push_back(c.Get("a", "k", 5s, Unsampled(0x43), ""));           // no token
      results.push_back(c.Get("b", "slow-1", 5s, Unsampled(0x44), token));   // slow: 400 ms
      results.push_back(c.Get("b", "slow-2", 0ms, Unsampled(0x45), token));  // deadline (100 ms)
    }
    // The overrun plugin call (the deadline) ends 300 ms after the proxy's:
    // wait for its SERVER span, not a fixed time (a loaded CI machine).
    const std::string overrun = "4bf92f3577b34da6a3" + std::string(12, '0') + "45";
    for (auto until = std::chrono::steady_clock::now() + 15s;
         std::chrono::steady_clock::now() < until; std::this_thread::sleep_for(50ms)) {
      auto t = FileTraces(proxy.trace_file());
      if (Find(t[overrun], "prism_test_adaptive_plugin", kServer)) break;
    }
    EXPECT_EQ(proxy.Stop(), 0);
    auto traces = FileTraces(proxy.trace_file());
    std::vector<Shape> shapes;
    for (size_t i = 0; i < results.size(); ++i) {
      std::string id = "4bf92f3577b34da6a3" + std::string(12, '0') + "4" + std::to_string(i + 1);
      Shape shape;
      const auto& spans = traces[id];
      const SpanRecord* server = Find(spans, "prism-proxy", kServer);
      EXPECT_TRUE(server) << id;
      if (!server) continue;
      std::map<std::string, std::string> names;  // span id -> service/name, for parents
      for (const auto& sp : spans) names[sp.span_id] = sp.service + "/" + sp.name;
      for (const auto& sp : spans) {
        const bool proxy_span = sp.service == "prism-proxy";
        json attrs = sp.attributes;
        // What differs by nature between two runs.
        for (const char* k : {"prism.request_id", "network.peer.port", "server.port",
                              "server.address", "prism.sampling.reason"}) {
          attrs.erase(k);
        }
        json events = json::array();
        for (const auto& ev : sp.events) {
          uint64_t t = ev.value("time_unix_nano", uint64_t{0});
          EXPECT_TRUE(t >= sp.start_ns && t <= sp.end_ns) << sp.name << " event at " << t;
          events.push_back({ev.value("name", ""), ev.value("attributes", json::object())});
        }
        EXPECT_LE(sp.start_ns, sp.end_ns) << sp.name;
        if (proxy_span) {  // a plugin's call may outlive the proxy's (the deadline)
          EXPECT_GE(sp.start_ns, server->start_ns) << sp.name;
          EXPECT_LE(sp.end_ns, server->end_ns) << sp.name;
        }
        std::string parent = sp.parent_span_id.empty()        ? "none"
                             : names.count(sp.parent_span_id) ? names[sp.parent_span_id]
                                                              : "remote";
        shape[sp.service + "/" + sp.name + "/" + std::to_string(sp.kind)] =
            "parent=" + parent + " status=" + std::to_string(sp.status_code) + ":" +
            sp.status_message + " attributes=" + attrs.dump() + " events=" + events.dump();
      }
      shapes.push_back(shape);
    }
    return shapes;
  };
  std::vector<Shape> live =
      run("tracing: {sampler: always_on}\nnamespaces:\n  a: {plugin: {command: [" + PluginPath() +
          "]}}\n" + extra);
  std::vector<Shape> replayed = run(AdaptiveConfig("", extra, "300ms"));
  ASSERT_EQ(live.size(), 5u);
  ASSERT_EQ(replayed.size(), 5u);
  for (size_t i = 0; i < live.size(); ++i) {
    EXPECT_FALSE(live[i].empty()) << i;
    EXPECT_EQ(live[i], replayed[i]) << "request " << i;
  }
  // The plugin's SERVER span (deferred in the adaptive run) is among them
  // for the calls that reached it: the plugin error, slow and deadline.
  for (size_t i : {0, 3, 4}) {
    EXPECT_EQ(replayed[i].count("prism_test_adaptive_plugin/prism.v1.KeyValue/Get/2"), 1u) << i;
  }
}

// A plugin that dies mid-request: the proxy's trace is kept, marked error.
TEST(AdaptiveE2E, PluginCrashMidRequestKeepsTheProxysTrace) {
  std::string dir = MakeTempDir();
  Proxy proxy(dir, AdaptiveConfig());
  ASSERT_TRUE(proxy.ok()) << Log(proxy);
  // Dropped before the proxy stops: an idle grpc++ client holds its drain.
  auto client = std::make_unique<Client>(proxy.address());
  Client& c = *client;
  ASSERT_TRUE(c.Get("a", "warm").status.ok());
  pid_t plugin = proxy.PluginPid("a");
  ASSERT_GT(plugin, 0);
  auto pending =
      std::async(std::launch::async, [&] { return c.Get("a", "slow-crash", 5s, Unsampled(0x41)); });
  std::this_thread::sleep_for(50ms);
  ASSERT_EQ(kill(plugin, SIGKILL), 0);
  Result r = pending.get();
  EXPECT_EQ(r.status.error_code(), grpc::StatusCode::UNAVAILABLE) << r.status.error_message();
  ASSERT_FALSE(r.trace_id.empty());
  client.reset();
  ASSERT_EQ(proxy.Stop(), 0);
  auto traces = FileTraces(proxy.trace_file());
  ASSERT_EQ(traces.count(r.trace_id), 1u);
  const auto& spans = traces[r.trace_id];
  EXPECT_EQ(spans.size(), 4u);  // the proxy's four; the plugin's never ended
  const SpanRecord* server = Find(spans, "prism-proxy", kServer);
  ASSERT_TRUE(server);
  EXPECT_EQ(server->status_code, 2);
  EXPECT_EQ(Attr(*server, "prism.sampling.reason"), "error");
  const SpanRecord* call = Find(spans, "prism-proxy", kClient);
  ASSERT_TRUE(call);
  EXPECT_EQ(call->status_code, 2);
}

// At the memory bound the plugin evicts whole traces and counts them.
TEST(AdaptiveE2E, AtTheMemoryBoundTracesAreEvictedWholeAndCounted) {
  std::string dir = MakeTempDir();
  // 1 MiB of undecided spans in each process; the plugin holds a finished
  // request's spans for wait_ms (10 s here) waiting for a verdict that, for
  // normal traffic, never comes - so it must evict.
  Proxy proxy(dir, "namespaces:\n  a: {plugin: {command: [" + PluginPath() + "]}}\n", {},
              {{"OTEL_TRACES_SAMPLER", "prism_adaptive"},
               {"OTEL_TRACES_SAMPLER_ARG", "ratio=0.01,slow_ms=60000,buffer_mb=1,wait_ms=10000"}});
  ASSERT_TRUE(proxy.ok()) << Log(proxy);
  // Dropped before the proxy stops: an idle grpc++ client holds its drain.
  auto client = std::make_unique<Client>(proxy.address());
  Client& c = *client;
  for (int i = 0; i < 3000; ++i) ASSERT_TRUE(c.Get("a", "k" + std::to_string(i)).status.ok());
  client.reset();
  ASSERT_EQ(proxy.Stop(), 0);
  std::string log = Log(proxy);
  // The shutdown lines of both processes; the plugin's is the one that
  // evicted (the proxy holds a request's spans only while it runs).
  uint64_t evicted = 0, spans = 0, peak = 0;
  std::regex re(
      "adaptive sampling: .* evicted=(\\d+) evicted_spans=(\\d+) .* "
      "peak_buffered_bytes=(\\d+)");
  int lines = 0;
  for (std::sregex_iterator it(log.begin(), log.end(), re), end; it != end; ++it) {
    ++lines;
    if (std::stoull((*it)[1]) > evicted) {
      evicted = std::stoull((*it)[1]);
      spans = std::stoull((*it)[2]);
      peak = std::stoull((*it)[3]);
    }
  }
  ASSERT_EQ(lines, 2) << log;
  EXPECT_GT(evicted, 0u) << log;
  EXPECT_EQ(spans, 2 * evicted) << log;
  EXPECT_LE(peak, (1u << 20) + 4096) << log;  // the bound, plus at most one span over
}

}  // namespace
}  // namespace prism::e2e
