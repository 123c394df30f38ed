// prism-plugin-redis behind the real prism-proxy (which launches it from a
// config with settings), called by a gRPC client and by the prism CLI, on a
// real redis-server: hostile data round-trips exactly, Redis receives exactly
// the intended commands, one trace runs from the CLI to the Redis command,
// and a Redis restart costs UNAVAILABLE only while it is down.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "kv_calls.h"
#include "prism/plugin/validation.h"
#include "prism/v1/kv.grpc.pb.h"
#include "redis_command.h"
#include "redis_server.h"
#include "testing.h"

namespace prism::redis {
namespace {

using namespace std::chrono_literals;
namespace pt = prism::plugin::testing;
namespace rt = prism::redis::testing;

// A proxy serving namespace "cache" on prism-plugin-redis (launched by the
// proxy with the Redis port as a setting) and writing the shared trace file.
class ThroughProxy : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(redis_.ok()) << redis_.Log();
    dir_ = pt::MakeTempDir("prism-redis-proxy-");
    trace_file_ = dir_ + "/traces.jsonl";
    std::ofstream(dir_ + "/prism.yaml") << "namespaces:\n"
                                           "  cache:\n"
                                           "    plugin:\n"
                                           "      command: [prism-plugin-redis]\n"
                                           "      settings:\n"
                                           "        port: \""
                                        << redis_.port()
                                        << "\"\n"
                                           "        pool-size: \"2\"\n";
    addr_ = "127.0.0.1:" + std::to_string(rt::FreePort());
    env_ = {"PRISM_TRACE_FILE=" + trace_file_, "PRISM_DATA_DIR=" + dir_ + "/data",
            "OTEL_BSP_SCHEDULE_DELAY=100",     "OTEL_TRACES_SAMPLER=parentbased_always_on",
            "OTEL_TRACES_EXPORTER=file",       "OTEL_SERVICE_NAME=",
            "OTEL_EXPORTER_OTLP_ENDPOINT=",    "OTEL_SDK_DISABLED="};
    proxy_ = std::make_unique<pt::ChildProcess>(
        PRISM_PROXY_BIN,
        std::vector<std::string>{"--plugin-dir", PRISM_REDIS_PLUGIN_DIR, "--listen", addr_,
                                 "--config", dir_ + "/prism.yaml"},
        env_, dir_ + "/proxy.stderr");
    ASSERT_TRUE(pt::WaitServing(addr_, 30s)) << pt::ReadFile(dir_ + "/proxy.stderr");
    grpc::ChannelArguments args;
    args.SetMaxReceiveMessageSize(prism::plugin::kMaxMessageBytes);
    stub_ = prism::v1::KeyValue::NewStub(
        grpc::CreateCustomChannel(addr_, grpc::InsecureChannelCredentials(), args));
  }

  void TearDown() override {
    if (proxy_) StopProxy();
    if (!HasFailure()) {
      std::error_code ec;
      std::filesystem::remove_all(dir_, ec);
    }
  }

  int StopProxy() {
    proxy_->Signal(SIGTERM);
    int code = proxy_->Wait(30s);
    proxy_.reset();
    return code;
  }

  static std::unique_ptr<grpc::ClientContext> Ctx() { return rt::CallContext(5s); }
  grpc::Status Set(const std::string& key, const std::string& value) {
    return rt::KvSet(*stub_, "cache", key, value);
  }
  grpc::Status Get(const std::string& key, prism::v1::GetResponse* resp,
                   std::chrono::milliseconds d = 5s) {
    return rt::KvGet(*stub_, "cache", key, resp, d);
  }

  // Runs the prism CLI; stdout in `out`, exit code returned.
  int Cli(const std::vector<std::string>& args, std::string* out) {
    std::string cmd = std::string("env PRISM_ADDR=") + addr_ + " PRISM_TRACE_FILE=" + trace_file_ +
                      " OTEL_BSP_SCHEDULE_DELAY=100 '" + PRISM_CLI_BIN + "'";
    for (const auto& a : args) cmd += " '" + a + "'";
    cmd += " > '" + dir_ + "/cli.out' 2> '" + dir_ + "/cli.err'";
    int rc = system(cmd.c_str());
    *out = pt::ReadFile(dir_ + "/cli.out");
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
  }

  rt::RedisServer redis_;
  std::string dir_, trace_file_, addr_;
  std::vector<std::string> env_;
  std::unique_ptr<pt::ChildProcess> proxy_;
  std::unique_ptr<prism::v1::KeyValue::Stub> stub_;
};

TEST_F(ThroughProxy, HostileKeysAndValuesRoundTripAndRedisSeesExactlyThem) {
  std::string binary;
  for (int i = 0; i < 256; ++i) binary.push_back(static_cast<char>(i));
  std::string mib(1 << 20, '\0');
  for (size_t i = 0; i < mib.size(); ++i) mib[i] = static_cast<char>((i * 7919) >> 3);
  // Keys are proto3 strings (UTF-8); values are bytes.
  std::vector<std::pair<std::string, std::string>> items = {
      {std::string("nul\0key", 7), binary},
      {"crlf\r\nDEL everything\r\n", ""},
      {"quote\" back\\slash 'x' *?[]", "\r\n"},
      {"trace_id", std::string("\0", 1)},
      {"\xe2\x9c\x93 utf-8", "*2\r\n$3\r\nDEL\r\n$1\r\nk\r\n"},
      {std::string(prism::plugin::kMaxKeyBytes, 'K'), mib},
  };
  rt::Monitor mon(redis_);
  ASSERT_TRUE(mon.ok());
  std::vector<std::vector<std::string>> want;
  for (const auto& [k, v] : items) {
    grpc::Status st = Set(k, v);
    ASSERT_TRUE(st.ok()) << st.error_message();
    want.push_back({"SET", RedisKey("cache", k), v});
    prism::v1::GetResponse got;
    st = Get(k, &got);
    ASSERT_TRUE(st.ok()) << st.error_message();
    EXPECT_TRUE(got.found());
    EXPECT_EQ(got.value().size(), v.size());
    EXPECT_TRUE(got.value() == v) << "value of a " << k.size() << "-byte key differs";
    want.push_back({"GET", RedisKey("cache", k)});
  }
  prism::v1::BatchGetRequest bget;
  bget.set_namespace_("cache");
  for (const auto& [k, v] : items) bget.add_keys(k);
  prism::v1::BatchGetResponse bget_resp;
  ASSERT_TRUE(stub_->BatchGet(Ctx().get(), bget, &bget_resp).ok());
  std::vector<std::string> mget = {"MGET"};
  for (const auto& [k, v] : items) mget.push_back(RedisKey("cache", k));
  want.push_back(mget);
  ASSERT_EQ(bget_resp.results_size(), static_cast<int>(items.size()));
  for (size_t i = 0; i < items.size(); ++i) {
    EXPECT_TRUE(bget_resp.results(i).value() == items[i].second) << i;
  }
  prism::v1::ExistsRequest ex;
  ex.set_namespace_("cache");
  ex.set_key("trace_id");
  prism::v1::ExistsResponse ex_resp;
  ASSERT_TRUE(stub_->Exists(Ctx().get(), ex, &ex_resp).ok());
  EXPECT_TRUE(ex_resp.exists());
  want.push_back({"EXISTS", "5:cache:trace_id"});
  prism::v1::DeleteRequest del;
  del.set_namespace_("cache");
  del.set_key("trace_id");
  prism::v1::DeleteResponse del_resp;
  ASSERT_TRUE(stub_->Delete(Ctx().get(), del, &del_resp).ok());
  EXPECT_TRUE(del_resp.deleted());
  want.push_back({"DEL", "5:cache:trace_id"});
  prism::v1::BatchDeleteRequest bdel;
  bdel.set_namespace_("cache");
  for (const auto& [k, v] : items) bdel.add_keys(k);
  prism::v1::BatchDeleteResponse bdel_resp;
  ASSERT_TRUE(stub_->BatchDelete(Ctx().get(), bdel, &bdel_resp).ok());
  EXPECT_EQ(bdel_resp.deleted(), static_cast<int64_t>(items.size()) - 1);
  std::vector<std::string> dels = {"DEL"};
  for (const auto& [k, v] : items) dels.push_back(RedisKey("cache", k));
  want.push_back(dels);
  // The plugin's connections: every command from them, nothing else.
  std::vector<rt::MonitoredCommand> got;
  std::string error;
  ASSERT_TRUE(mon.Collect(&got, &error)) << error;
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < want.size(); ++i) {
    EXPECT_TRUE(got[i].argv == want[i]) << "command " << i << " differs: " << got[i].argv[0];
  }
}

// One trace from the CLI's CLIENT span through the proxy to the plugin's
// pool.acquire and GET spans, read from the file all three processes wrote.
TEST_F(ThroughProxy, OneTraceFromTheCliToTheRedisCommand) {
  std::string out;
  ASSERT_EQ(Cli({"kv", "set", "-n", "cache", "greeting", "hello-secret"}, &out), 0)
      << pt::ReadFile(dir_ + "/cli.err");
  ASSERT_EQ(Cli({"kv", "get", "-n", "cache", "greeting", "--json"}, &out), 0)
      << pt::ReadFile(dir_ + "/cli.err");
  auto j = nlohmann::json::parse(out, nullptr, false);
  ASSERT_FALSE(j.is_discarded()) << out;
  EXPECT_EQ(j["value"], "hello-secret");
  std::string trace_id = j.value("trace_id", "");
  ASSERT_EQ(trace_id.size(), 32u) << out;
  ASSERT_EQ(StopProxy(), 0);  // drains, stops the plugin (which flushes), flushes

  std::vector<pt::JsonSpan> spans;
  for (const auto& s : pt::ReadTraceFile(trace_file_)) {
    if (s.trace_id == trace_id) spans.push_back(s);
  }
  auto find = [&](const std::string& name, const std::string& service,
                  int kind) -> const pt::JsonSpan* {
    for (const auto& s : spans) {
      if (s.name == name && s.service_name == service && s.kind == kind) return &s;
    }
    return nullptr;
  };
  const auto* cli = find("prism.v1.KeyValue/Get", "prism-cli", 3);
  const auto* server = find("prism.v1.KeyValue/Get", "prism-proxy", 2);
  const auto* forward = find("prism.v1.KeyValue/Get", "prism-proxy", 3);
  const auto* plugin = find("prism.v1.KeyValue/Get", "prism-plugin-redis", 2);
  const auto* acquire = find("pool.acquire", "prism-plugin-redis", 1);
  const auto* command = find("GET", "prism-plugin-redis", 3);
  ASSERT_TRUE(cli && server && forward && plugin && acquire && command)
      << spans.size() << " spans in the trace\n"
      << pt::ReadFile(trace_file_).substr(0, 6000);
  EXPECT_EQ(cli->parent_span_id, "");
  EXPECT_EQ(server->parent_span_id, cli->span_id);
  EXPECT_EQ(forward->parent_span_id, server->span_id);
  EXPECT_EQ(plugin->parent_span_id, forward->span_id);
  EXPECT_EQ(acquire->parent_span_id, plugin->span_id);
  EXPECT_EQ(command->parent_span_id, plugin->span_id);
  // The plugin's own spans are exactly these two.
  int children = 0;
  for (const auto& s : spans) children += s.parent_span_id == plugin->span_id;
  EXPECT_EQ(children, 2);
  EXPECT_EQ(command->attrs.at("db.system.name"), "redis");
  EXPECT_EQ(command->attrs.at("db.operation.name"), "GET");
  EXPECT_EQ(command->attrs.at("db.namespace"), "0");
  EXPECT_EQ(command->attrs.at("db.query.text"), "GET 5:cache:greeting");
  EXPECT_EQ(command->attrs.at("server.address"), "127.0.0.1");
  EXPECT_EQ(command->attrs.at("server.port"), std::to_string(redis_.port()));
  EXPECT_EQ(command->attrs.at("db.response.returned_rows"), "1");
  EXPECT_EQ(acquire->attrs.at("db.client.connection.pool.name"), "redis");
  EXPECT_EQ(server->attrs.at("prism.namespace"), "cache");
  // Values never reach the trace file; the SET's text keeps only the key.
  std::string file = pt::ReadFile(trace_file_);
  EXPECT_EQ(file.find("hello-secret"), std::string::npos);
  EXPECT_NE(file.find("SET 5:cache:greeting ?"), std::string::npos);
}

// Redis killed under the proxy: UNAVAILABLE naming Redis, within the
// deadline, while it is down; success once it is back (the plugin is not
// restarted: it reconnects).
TEST_F(ThroughProxy, RedisRestartIsUnavailableThenRecovers) {
  ASSERT_TRUE(Set("k", "v").ok());
  redis_.Kill();
  for (int i = 0; i < 5; ++i) {
    prism::v1::GetResponse got;
    auto start = std::chrono::steady_clock::now();
    grpc::Status st = Get("k", &got, 1s);
    EXPECT_LT(std::chrono::steady_clock::now() - start, 1500ms);
    EXPECT_EQ(st.error_code(), grpc::StatusCode::UNAVAILABLE) << st.error_message();
    EXPECT_NE(st.error_message().find("redis at 127.0.0.1:" + std::to_string(redis_.port()) +
                                      " is unavailable"),
              std::string::npos)
        << st.error_message();
  }
  ASSERT_TRUE(redis_.Restart()) << redis_.Log();
  prism::v1::GetResponse got;
  grpc::Status st = Get("k", &got);
  ASSERT_TRUE(st.ok()) << st.error_message();
  EXPECT_FALSE(got.found());  // nothing persisted
  ASSERT_TRUE(Set("k", "v2").ok());
  ASSERT_TRUE(Get("k", &got).ok());
  EXPECT_EQ(got.value(), "v2");
}

}  // namespace
}  // namespace prism::redis
