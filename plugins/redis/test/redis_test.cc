// prism-plugin-redis against a real redis-server this test starts: in
// process (exact span trees with the in-memory recorder; MONITOR; restart;
// pool exhaustion; OOM) and as a child process (settings, AUTH, SELECT).
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <signal.h>

#include <atomic>
#include <fstream>
#include <future>
#include <regex>
#include <thread>

#include "kv_calls.h"
#include "prism/grpc_tracing/client.h"
#include "prism/grpc_tracing/server.h"
#include "prism/plugin/validation.h"
#include "prism/tracing/in_memory_recorder.h"
#include "redis_command.h"
#include "redis_server.h"
#include "redis_service.h"
#include "testing.h"

namespace prism::redis {
namespace {

using namespace std::chrono_literals;
namespace pt = prism::plugin::testing;
namespace rt = prism::redis::testing;
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

// ---------------------------------------------------------------------------
// The pure parts.

TEST(RedisKey, LengthPrefixKeepsEverySplitApart) {
  EXPECT_EQ(RedisKey("orders", "a"), "6:orders:a");
  // The same bytes split differently never meet.
  EXPECT_NE(RedisKey("a:b", "c"), RedisKey("a", "b:c"));
  EXPECT_NE(RedisKey("1:x", "y"), RedisKey("1", "x:y"));
  EXPECT_EQ(RedisKey("n", std::string("\0\r\n", 3)), std::string("1:n:\0\r\n", 7));
}

TEST(QueryText, KeepsKeysDropsValuesAndIsBounded) {
  EXPECT_EQ(QueryText({"GET", "2:ns:k"}, ValueArgs::kNone), "GET 2:ns:k");
  EXPECT_EQ(QueryText({"SET", "2:ns:k", "secret"}, ValueArgs::kThird), "SET 2:ns:k ?");
  EXPECT_EQ(QueryText({"MSET", "a", "v1", "b", "v2"}, ValueArgs::kEverySecondFromThird),
            "MSET a ? b ?");
  EXPECT_EQ(QueryText({"GET", std::string_view("a b\r\n\"\\\x01\xff", 9)}, ValueArgs::kNone),
            "GET \"a b\\r\\n\\\"\\\\\\x01\\xff\"");
  EXPECT_EQ(QuoteArg(""), "\"\"");
  std::vector<std::string> keys(500, std::string(10, 'k'));
  std::vector<std::string_view> argv = {"DEL"};
  for (const auto& k : keys) argv.push_back(k);
  std::string text = QueryText(argv, ValueArgs::kNone);
  EXPECT_LE(text.size(), kMaxQueryTextBytes);
  EXPECT_NE(text.find(" other arguments]"), std::string::npos);
  std::string big(5000, 'x');
  EXPECT_EQ(QueryText({"GET", big}, ValueArgs::kNone), "GET [1 other arguments]");
}

TEST(ErrorReplies, PrefixAndStatus) {
  EXPECT_EQ(ErrorPrefix("WRONGTYPE Operation against a key"), "WRONGTYPE");
  EXPECT_EQ(ErrorPrefix("OOM command not allowed"), "OOM");
  EXPECT_EQ(ErrorPrefix("lower case text"), "ERR");
  EXPECT_EQ(ErrorPrefix(""), "ERR");
  EXPECT_EQ(StatusForErrorReply("SET", "OOM x").error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_EQ(StatusForErrorReply("GET", "LOADING x").error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(StatusForErrorReply("GET", "WRONGTYPE x").error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);
  grpc::Status other = StatusForErrorReply("GET", "");
  EXPECT_EQ(other.error_code(), grpc::StatusCode::INTERNAL);
  EXPECT_FALSE(other.error_message().empty());
  EXPECT_EQ(StatusForErrorReply("SET", "OOM no room").error_message(), "redis SET: OOM no room");
}

TEST(MonitorLine, ParsesEscapes) {
  rt::MonitoredCommand m;
  ASSERT_TRUE(rt::ParseMonitorLine(
      "1700000000.123456 [3 127.0.0.1:5555] \"SET\" \"a b\\r\\n\\x00\\\"\" \"\"", &m));
  EXPECT_EQ(m.db, 3);
  EXPECT_EQ(m.client, "127.0.0.1:5555");
  ASSERT_EQ(m.argv.size(), 3u);
  EXPECT_EQ(m.argv[1], std::string("a b\r\n\0\"", 7));
  EXPECT_EQ(m.argv[2], "");
}

// ---------------------------------------------------------------------------
// The service in this process behind a real Unix socket, traced by the
// interceptors into an in-memory recorder, on a real redis-server.

class RedisInProcess : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(redis_.ok()) << redis_.Log();
    Start(4);
  }

  void Start(int pool_size, std::string client_name = "prism-plugin-redis") {
    prism::grpc_tracing::InstallSyncHandlerScopes();
    prism::tracing::TracerProviderOptions po;
    po.processors.push_back(recorder_.MakeProcessor());
    provider_ = std::make_shared<prism::tracing::TracerProvider>(std::move(po));
    tracer_ = provider_->GetTracer("test");
    dir_ = pt::MakeTempDir("prism-redis-plugin-");
    RedisOptions o;
    o.port = redis_.port();
    o.pool_size = pool_size;
    o.client_name = client_name;
    o.tracer = provider_->GetTracer("prism.plugin.redis");
    auto service = RedisService::Open(o);
    ASSERT_TRUE(service.ok()) << service.status();
    service_ = std::move(*service);
    target_ = "unix://" + dir_ + "/s.sock";
    grpc::ServerBuilder b;
    b.AddListeningPort(target_, grpc::InsecureServerCredentials());
    b.RegisterService(service_.get());
    b.SetMaxReceiveMessageSize(prism::plugin::kMaxMessageBytes);
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
    grpc::ChannelArguments args;
    args.SetMaxReceiveMessageSize(prism::plugin::kMaxMessageBytes);
    stub_ = prism::v1::KeyValue::NewStub(grpc::experimental::CreateCustomChannelWithInterceptors(
        target_, grpc::InsecureChannelCredentials(), args, std::move(cf)));
  }

  void Restart(int pool_size, std::string client_name = "prism-plugin-redis") {
    server_->Shutdown();
    server_.reset();
    service_.reset();
    recorder_.Clear();
    Start(pool_size, client_name);
  }

  void TearDown() override {
    if (server_) server_->Shutdown();
  }

  std::vector<SpanData> WaitSpans(size_t n) {
    for (int i = 0; i < 400 && recorder_.size() < n; ++i) std::this_thread::sleep_for(5ms);
    return recorder_.spans();
  }

  static std::unique_ptr<grpc::ClientContext> Ctx(std::chrono::milliseconds d = 5s) {
    return rt::CallContext(d);
  }
  grpc::Status Set(const std::string& ns, const std::string& key, const std::string& value,
                   std::chrono::milliseconds d = 5s) {
    return rt::KvSet(*stub_, ns, key, value, d);
  }
  grpc::Status Get(const std::string& ns, const std::string& key, prism::v1::GetResponse* resp,
                   std::chrono::milliseconds d = 5s) {
    return rt::KvGet(*stub_, ns, key, resp, d);
  }

  rt::RedisServer redis_;
  prism::tracing::InMemorySpanRecorder recorder_;
  std::shared_ptr<prism::tracing::TracerProvider> provider_;
  prism::tracing::Tracer tracer_;
  std::string dir_, target_;
  std::unique_ptr<RedisService> service_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<prism::v1::KeyValue::Stub> stub_;
};

// Keys are proto3 strings (UTF-8); values are bytes.
std::vector<std::string> HostileKeys() {
  return {std::string("nul\0inside", 10),
          "crlf\r\nSET x y\r\n",
          "with space and \"quotes\" and 'single'",
          "*glob?[chars]",
          "6:orders:looks-encoded",
          "trace_id",
          "\xc3\xa9t\xc3\xa9 \xe2\x9c\x93",  // UTF-8
          std::string(prism::plugin::kMaxKeyBytes, 'k')};
}
std::vector<std::string> HostileValues() {
  std::string binary;
  for (int i = 0; i < 256; ++i) binary.push_back(static_cast<char>(i));
  std::string big(1 << 20, '\0');
  for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>((i * 131) ^ (i >> 7));
  return {binary, "", "\r\n", "*1\r\n$4\r\nQUIT\r\n", big, std::string("\0", 1)};
}

TEST_F(RedisInProcess, AllSevenMethodsRoundTripHostileData) {
  auto keys = HostileKeys();
  auto values = HostileValues();
  for (size_t i = 0; i < keys.size(); ++i) {
    const std::string& v = values[i % values.size()];
    ASSERT_TRUE(Set("ns", keys[i], v).ok()) << i;
    prism::v1::GetResponse got;
    ASSERT_TRUE(Get("ns", keys[i], &got).ok()) << i;
    EXPECT_TRUE(got.found()) << i;
    EXPECT_EQ(got.value(), v) << i;
    // Another namespace does not see it.
    ASSERT_TRUE(Get("other", keys[i], &got).ok());
    EXPECT_FALSE(got.found());
  }
  // A 1 MiB value under a 4 KiB key, through a batch too.
  prism::v1::BatchSetRequest bset;
  bset.set_namespace_("b:ns");  // a namespace with the separator in it
  for (size_t i = 0; i < values.size(); ++i) {
    auto* it = bset.add_items();
    it->set_key(keys[i]);
    it->set_value(values[i]);
  }
  prism::v1::BatchSetResponse bset_resp;
  ASSERT_TRUE(stub_->BatchSet(Ctx().get(), bset, &bset_resp).ok());
  prism::v1::BatchGetRequest bget;
  bget.set_namespace_("b:ns");
  for (size_t i = 0; i < values.size(); ++i) bget.add_keys(keys[i]);
  bget.add_keys("missing");
  prism::v1::BatchGetResponse bget_resp;
  ASSERT_TRUE(stub_->BatchGet(Ctx().get(), bget, &bget_resp).ok());
  ASSERT_EQ(bget_resp.results_size(), static_cast<int>(values.size()) + 1);
  for (size_t i = 0; i < values.size(); ++i) {
    EXPECT_TRUE(bget_resp.results(i).found()) << i;
    EXPECT_EQ(bget_resp.results(i).value(), values[i]) << i;
  }
  EXPECT_FALSE(bget_resp.results(values.size()).found());

  prism::v1::ExistsRequest ex;
  ex.set_namespace_("b:ns");
  ex.set_key(keys[0]);
  prism::v1::ExistsResponse ex_resp;
  ASSERT_TRUE(stub_->Exists(Ctx().get(), ex, &ex_resp).ok());
  EXPECT_TRUE(ex_resp.exists());
  ex.set_namespace_("b");
  ASSERT_TRUE(stub_->Exists(Ctx().get(), ex, &ex_resp).ok());
  EXPECT_FALSE(ex_resp.exists());

  prism::v1::DeleteRequest del;
  del.set_namespace_("b:ns");
  del.set_key(keys[0]);
  prism::v1::DeleteResponse del_resp;
  ASSERT_TRUE(stub_->Delete(Ctx().get(), del, &del_resp).ok());
  EXPECT_TRUE(del_resp.deleted());
  ASSERT_TRUE(stub_->Delete(Ctx().get(), del, &del_resp).ok());
  EXPECT_FALSE(del_resp.deleted());

  prism::v1::BatchDeleteRequest bdel;
  bdel.set_namespace_("b:ns");
  for (size_t i = 0; i < values.size(); ++i) bdel.add_keys(keys[i]);
  bdel.add_keys("missing");
  prism::v1::BatchDeleteResponse bdel_resp;
  ASSERT_TRUE(stub_->BatchDelete(Ctx().get(), bdel, &bdel_resp).ok());
  EXPECT_EQ(bdel_resp.deleted(), static_cast<int64_t>(values.size()) - 1);

  // What is in Redis is exactly the documented key form.
  auto c = redis_.Connect();
  ASSERT_TRUE(c);
  auto r = rt::RedisServer::Command(c.get(), {"GET", "2:ns:trace_id"});
  ASSERT_TRUE(r);
  ASSERT_EQ(r->type, REDIS_REPLY_STRING);
  EXPECT_EQ(std::string(r->str, r->len), values[5 % values.size()]);
}

TEST_F(RedisInProcess, GetIsOneTraceClientServerPoolCommand) {
  ASSERT_TRUE(Set("ns", "k", "secret-value").ok());
  WaitSpans(4);
  auto spans = recorder_.spans();
  const SpanData* set = nullptr;
  for (const auto& s : spans) {
    if (s.name == "SET") set = &s;
  }
  ASSERT_TRUE(set);
  EXPECT_EQ(Str(*set, "db.query.text"), "SET 2:ns:k ?");
  recorder_.Clear();
  auto root = tracer_.StartSpan("root");
  {
    prism::tracing::Scope scope(root);
    prism::v1::GetResponse resp;
    ASSERT_TRUE(Get("ns", "k", &resp).ok());
    EXPECT_EQ(resp.value(), "secret-value");
  }
  spans = WaitSpans(4);
  ASSERT_EQ(spans.size(), 4u);
  const SpanData *client = nullptr, *server = nullptr, *pool = nullptr, *cmd = nullptr;
  for (const auto& s : spans) {
    if (s.kind == SpanKind::kClient && s.name == "prism.v1.KeyValue/Get") client = &s;
    if (s.kind == SpanKind::kServer) server = &s;
    if (s.name == "pool.acquire") pool = &s;
    if (s.name == "GET") cmd = &s;
  }
  ASSERT_TRUE(client && server && pool && cmd);
  const auto& trace = root.context().trace_id();
  for (const SpanData* s : {client, server, pool, cmd}) EXPECT_EQ(s->context.trace_id(), trace);
  EXPECT_EQ(client->parent_span_id, root.context().span_id());
  EXPECT_EQ(server->parent_span_id, client->context.span_id());
  EXPECT_EQ(pool->parent_span_id, server->context.span_id());
  EXPECT_EQ(cmd->parent_span_id, server->context.span_id());
  EXPECT_EQ(Str(*pool, "db.client.connection.pool.name"), "redis");
  EXPECT_EQ(cmd->kind, SpanKind::kClient);
  EXPECT_EQ(Str(*cmd, "db.system.name"), "redis");
  EXPECT_EQ(Str(*cmd, "db.operation.name"), "GET");
  EXPECT_EQ(Str(*cmd, "db.namespace"), "0");
  EXPECT_EQ(Str(*cmd, "db.query.text"), "GET 2:ns:k");
  EXPECT_EQ(Str(*cmd, "server.address"), "127.0.0.1");
  EXPECT_EQ(Int(*cmd, "server.port"), redis_.port());
  EXPECT_EQ(Int(*cmd, "db.response.returned_rows"), 1);
  EXPECT_EQ(cmd->status, StatusCode::kUnset);
  for (const auto& s : spans) {
    for (const auto& kv : s.attributes) {
      if (auto* str = std::get_if<std::string>(&kv.value)) {
        EXPECT_EQ(str->find("secret-value"), std::string::npos) << kv.key;
      }
    }
  }
}

TEST_F(RedisInProcess, BatchesAreOneCommandWithTheBatchSize) {
  prism::v1::BatchSetRequest bset;
  bset.set_namespace_("ns");
  for (std::string k : {"a", "b", "c"}) {
    auto* it = bset.add_items();
    it->set_key(k);
    it->set_value("value-of-" + k);
  }
  prism::v1::BatchSetResponse r;
  ASSERT_TRUE(stub_->BatchSet(Ctx().get(), bset, &r).ok());
  auto spans = WaitSpans(4);
  const SpanData* mset = nullptr;
  int commands = 0;
  for (const auto& s : spans) {
    if (Str(s, "db.system.name") == "redis") ++commands;
    if (s.name == "MSET") mset = &s;
  }
  ASSERT_TRUE(mset);
  EXPECT_EQ(commands, 1);
  EXPECT_EQ(Int(*mset, "db.operation.batch.size"), 3);
  EXPECT_EQ(Str(*mset, "db.query.text"), "MSET 2:ns:a ? 2:ns:b ? 2:ns:c ?");
}

// The commands Redis received are exactly the ones meant: read back with
// MONITOR and compared argument by argument (a `trace_id <id>` appended, a
// key rewritten, an extra command: each fails this).
TEST_F(RedisInProcess, MonitorShowsExactlyTheIntendedCommands) {
  rt::Monitor mon(redis_);
  ASSERT_TRUE(mon.ok());
  auto keys = HostileKeys();
  keys.pop_back();  // the 4 KiB one is covered above; keep the log small
  std::vector<std::vector<std::string>> want;
  for (size_t i = 0; i < keys.size(); ++i) {
    std::string value = HostileValues()[i % HostileValues().size()];
    if (value.size() > 4096) value = "v\r\n";
    ASSERT_TRUE(Set("ns", keys[i], value).ok());
    want.push_back({"SET", RedisKey("ns", keys[i]), value});
    prism::v1::GetResponse got;
    ASSERT_TRUE(Get("ns", keys[i], &got).ok());
    want.push_back({"GET", RedisKey("ns", keys[i])});
  }
  prism::v1::ExistsRequest ex;
  ex.set_namespace_("ns");
  ex.set_key("trace_id");
  prism::v1::ExistsResponse ex_resp;
  ASSERT_TRUE(stub_->Exists(Ctx().get(), ex, &ex_resp).ok());
  want.push_back({"EXISTS", "2:ns:trace_id"});
  prism::v1::DeleteRequest del;
  del.set_namespace_("ns");
  del.set_key("trace_id");
  prism::v1::DeleteResponse del_resp;
  ASSERT_TRUE(stub_->Delete(Ctx().get(), del, &del_resp).ok());
  want.push_back({"DEL", "2:ns:trace_id"});
  prism::v1::BatchSetRequest bset;
  bset.set_namespace_("ns");
  for (std::string k : {"x", "y"}) {
    auto* it = bset.add_items();
    it->set_key(k);
    it->set_value("v-" + k);
  }
  prism::v1::BatchSetResponse bset_resp;
  ASSERT_TRUE(stub_->BatchSet(Ctx().get(), bset, &bset_resp).ok());
  want.push_back({"MSET", "2:ns:x", "v-x", "2:ns:y", "v-y"});
  prism::v1::BatchGetRequest bget;
  bget.set_namespace_("ns");
  bget.add_keys("x");
  bget.add_keys("y");
  prism::v1::BatchGetResponse bget_resp;
  ASSERT_TRUE(stub_->BatchGet(Ctx().get(), bget, &bget_resp).ok());
  want.push_back({"MGET", "2:ns:x", "2:ns:y"});
  prism::v1::BatchDeleteRequest bdel;
  bdel.set_namespace_("ns");
  bdel.add_keys("x");
  bdel.add_keys("y");
  prism::v1::BatchDeleteResponse bdel_resp;
  ASSERT_TRUE(stub_->BatchDelete(Ctx().get(), bdel, &bdel_resp).ok());
  want.push_back({"DEL", "2:ns:x", "2:ns:y"});
  std::vector<rt::MonitoredCommand> got;
  std::string error;
  ASSERT_TRUE(mon.Collect(&got, &error)) << error;
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < want.size(); ++i) {
    EXPECT_EQ(got[i].argv, want[i]) << "command " << i;
    EXPECT_EQ(got[i].db, 0);
  }
}

// CLIENT SETNAME is part of connecting, never of a call: after 200 calls
// Redis has run it once per connection, and CLIENT LIST names the plugin.
TEST_F(RedisInProcess, ClientNameIsSetOncePerConnection) {
  auto c = redis_.Connect();
  ASSERT_TRUE(rt::RedisServer::Command(c.get(), {"CONFIG", "RESETSTAT"}));
  Restart(4);
  ASSERT_EQ(service_->connects(), 4);
  for (int i = 0; i < 200; ++i) {
    prism::v1::GetResponse got;
    ASSERT_TRUE(Get("ns", "k" + std::to_string(i % 7), &got).ok());
  }
  auto stats = rt::RedisServer::Command(c.get(), {"INFO", "commandstats"});
  ASSERT_TRUE(stats && stats->type == REDIS_REPLY_STRING);
  std::string text(stats->str, stats->len);
  EXPECT_NE(text.find("cmdstat_client|setname:calls=4,"), std::string::npos) << text;
  EXPECT_NE(text.find("cmdstat_get:calls=200,"), std::string::npos) << text;
  auto list = rt::RedisServer::Command(c.get(), {"CLIENT", "LIST"});
  ASSERT_TRUE(list && list->type == REDIS_REPLY_STRING);
  std::string clients(list->str, list->len);
  size_t named = 0;
  for (size_t p = 0; (p = clients.find("name=prism-plugin-redis ", p)) != std::string::npos; ++p) {
    ++named;
  }
  EXPECT_EQ(named, 4u) << clients;
}

// Redis killed mid-run: calls answer UNAVAILABLE (never hang past their
// deadline) while it is down, and succeed again once it is back on the
// same port. A paused Redis (SIGSTOP) costs a call exactly its deadline.
TEST_F(RedisInProcess, RestartMidRunUnavailableThenRecovers) {
  ASSERT_TRUE(Set("ns", "k", "v").ok());
  std::atomic<bool> stop{false};
  std::atomic<int> ok{0}, unavailable{0}, other{0}, late{0};
  std::vector<std::thread> workers;
  for (int t = 0; t < 6; ++t) {
    workers.emplace_back([&] {
      while (!stop) {
        auto start = std::chrono::steady_clock::now();
        prism::v1::GetResponse got;
        grpc::Status st = Get("ns", "k", &got, 500ms);
        if (std::chrono::steady_clock::now() - start > 1500ms) ++late;
        if (st.ok()) {
          ++ok;
        } else if (st.error_code() == grpc::StatusCode::UNAVAILABLE) {
          EXPECT_NE(st.error_message().find("redis at 127.0.0.1:" + std::to_string(redis_.port())),
                    std::string::npos)
              << st.error_message();
          ++unavailable;
        } else {
          ++other;
        }
        std::this_thread::sleep_for(2ms);
      }
    });
  }
  std::this_thread::sleep_for(300ms);
  redis_.Kill();
  std::this_thread::sleep_for(500ms);
  int ok_before_restart = ok;
  int unavailable_while_down = unavailable;
  ASSERT_TRUE(redis_.Restart()) << redis_.Log();
  std::this_thread::sleep_for(500ms);
  int unavailable_at_restart = unavailable;
  std::this_thread::sleep_for(300ms);
  stop = true;
  for (auto& w : workers) w.join();
  EXPECT_GT(ok_before_restart, 0);
  EXPECT_GT(unavailable_while_down, 0);
  EXPECT_EQ(unavailable.load(), unavailable_at_restart) << "still failing after the restart";
  EXPECT_GT(ok.load(), ok_before_restart);
  EXPECT_EQ(other.load(), 0);
  EXPECT_EQ(late.load(), 0);

  // The data did not survive (no persistence); the plugin works on.
  prism::v1::GetResponse got;
  ASSERT_TRUE(Get("ns", "k", &got).ok());
  EXPECT_FALSE(got.found());

  // Paused: DEADLINE_EXCEEDED at the deadline, then fine after SIGCONT.
  redis_.Pause();
  auto start = std::chrono::steady_clock::now();
  grpc::Status st = Get("ns", "k", &got, 300ms);
  auto took = std::chrono::steady_clock::now() - start;
  // Still paused a while: the plugin's wait ends at the same deadline as the
  // caller's, a moment later; resuming at once would race it.
  std::this_thread::sleep_for(300ms);
  redis_.Resume();
  EXPECT_EQ(st.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED) << st.error_message();
  EXPECT_GE(took, 250ms);
  EXPECT_LT(took, 1500ms);
  ASSERT_TRUE(Get("ns", "k", &got).ok());
  // The span of the timed-out step says so: the command, or the reconnect
  // when the call drew a connection the restart had closed. (The plugin's
  // side ends just after the caller's, at the same deadline.)
  bool saw_timeout = false;
  for (int i = 0; i < 200 && !saw_timeout; ++i) {
    for (const auto& s : recorder_.spans()) {
      if (s.name == "GET" && Str(s, "error.type") == "timeout") saw_timeout = true;
      if (s.name == "redis.connect" && Str(s, "error.type") == "DEADLINE_EXCEEDED") {
        saw_timeout = true;
      }
    }
    std::this_thread::sleep_for(10ms);
  }
  EXPECT_TRUE(saw_timeout);
}

// All connections busy past the deadline: DEADLINE_EXCEEDED at the
// deadline, the pool.acquire span an error, Redis never asked.
TEST_F(RedisInProcess, PoolExhaustionHonoursTheDeadline) {
  Restart(1);
  auto held = service_->pool().Acquire({}, std::chrono::system_clock::now() + 10s);
  ASSERT_TRUE(held.ok());
  auto start = std::chrono::steady_clock::now();
  prism::v1::GetResponse got;
  grpc::Status st = Get("ns", "k", &got, 300ms);
  auto took = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(st.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);
  EXPECT_GE(took, 250ms);
  EXPECT_LT(took, 1500ms);
  auto spans = WaitSpans(3);
  const SpanData *server = nullptr, *pool = nullptr;
  for (const auto& s : spans) {
    if (s.kind == SpanKind::kServer) server = &s;
    if (s.name == "pool.acquire") pool = &s;
    EXPECT_NE(s.name, "GET");
  }
  ASSERT_TRUE(server && pool);
  EXPECT_EQ(pool->status, StatusCode::kError);
  EXPECT_EQ(pool->parent_span_id, server->context.span_id());
  EXPECT_NE(pool->status_message.find("pool 'redis'"), std::string::npos);
}

// Redis out of memory (maxmemory tiny, noeviction): writes answer
// RESOURCE_EXHAUSTED with Redis's message, db.response.status_code=OOM;
// reads go on. A key of another type: FAILED_PRECONDITION, WRONGTYPE.
TEST_F(RedisInProcess, OomIsResourceExhaustedAndWrongTypeIsReported) {
  auto c = redis_.Connect();
  ASSERT_TRUE(rt::RedisServer::Command(c.get(), {"CONFIG", "SET", "maxmemory", "1"}));
  grpc::Status st = Set("ns", "k", "v");
  ASSERT_TRUE(rt::RedisServer::Command(c.get(), {"CONFIG", "SET", "maxmemory", "0"}));
  EXPECT_EQ(st.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_NE(st.error_message().find("redis SET: OOM "), std::string::npos) << st.error_message();
  prism::v1::GetResponse got;
  EXPECT_TRUE(Get("ns", "k", &got).ok());

  ASSERT_TRUE(rt::RedisServer::Command(c.get(), {"LPUSH", "2:ns:list", "x"}));
  st = Get("ns", "list", &got);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_NE(st.error_message().find("WRONGTYPE"), std::string::npos);
  auto spans = WaitSpans(recorder_.size());
  int seen = 0;
  for (const auto& s : spans) {
    if (s.name == "SET" && s.status == StatusCode::kError) {
      EXPECT_EQ(Str(s, "db.response.status_code"), "OOM");
      EXPECT_EQ(Str(s, "error.type"), "OOM");
      ++seen;
    }
    if (s.name == "GET" && s.status == StatusCode::kError) {
      EXPECT_EQ(Str(s, "db.response.status_code"), "WRONGTYPE");
      ++seen;
    }
  }
  EXPECT_EQ(seen, 2);
}

// A BatchGet whose reply would pass the 64 MiB response limit (one 1 MiB
// value named 100 times) is refused while reading, not buffered whole.
TEST_F(RedisInProcess, OversizedReplyIsResourceExhausted) {
  ASSERT_TRUE(Set("ns", "big", std::string(1 << 20, 'b')).ok());
  prism::v1::BatchGetRequest req;
  req.set_namespace_("ns");
  for (int i = 0; i < 100; ++i) req.add_keys("big");
  prism::v1::BatchGetResponse resp;
  grpc::Status st = stub_->BatchGet(Ctx(10s).get(), req, &resp);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_EQ(st.error_message(),
            "redis MGET: the reply is larger than 64 MiB, the limit of one response");
  // 60 of them fit, and the connection is fine afterwards.
  req.mutable_keys()->DeleteSubrange(0, 40);
  st = stub_->BatchGet(Ctx(10s).get(), req, &resp);
  ASSERT_TRUE(st.ok()) << st.error_message();
  EXPECT_EQ(resp.results_size(), 60);
  EXPECT_EQ(resp.results(59).value().size(), 1u << 20);
}

TEST_F(RedisInProcess, InvalidRequestNeverReachesRedis) {
  grpc::Status st = Set("ns", std::string(prism::plugin::kMaxKeyBytes + 1, 'k'), "v");
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(st.error_message(), "key is 4097 bytes; the limit is 4096");
  st = Set("", "k", "v");
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
}

// ---------------------------------------------------------------------------
// The binary, with the settings a deployment uses.

std::string PluginStderr(const std::string& dir) { return pt::ReadFile(dir + "/stderr"); }

TEST(RedisChildProcess, AclUserPasswordFileAndDatabaseIndex) {
  rt::RedisServer redis;
  ASSERT_TRUE(redis.ok()) << redis.Log();
  auto admin = redis.Connect();
  ASSERT_TRUE(rt::RedisServer::Command(
      admin.get(), {"ACL", "SETUSER", "prism", "on", ">s3cr3t pass", "~*", "+@all"}));
  std::string dir = pt::MakeTempDir("prism-redis-child-");
  {
    std::ofstream pw(dir + "/password");
    pw << "s3cr3t pass\n";
  }
  std::string target = "unix://" + dir + "/redis.sock";
  std::string trace_file = dir + "/traces.jsonl";
  pt::ChildProcess p(PRISM_REDIS_PLUGIN,
                     {"--port", std::to_string(redis.port()), "--db", "3", "--user", "prism",
                      "--password-file", dir + "/password", "--pool-size", "2", "--listen", target},
                     {"OTEL_TRACES_EXPORTER=file", "PRISM_TRACE_FILE=" + trace_file,
                      "OTEL_SERVICE_NAME=", "OTEL_TRACES_SAMPLER=parentbased_always_on"},
                     dir + "/stderr");
  ASSERT_TRUE(pt::WaitServing(target, 20s)) << PluginStderr(dir);
  auto stub =
      prism::v1::KeyValue::NewStub(grpc::CreateChannel(target, grpc::InsecureChannelCredentials()));
  grpc::Status set_status = rt::KvSet(*stub, "ns", "k", "in-db-3");
  ASSERT_TRUE(set_status.ok()) << set_status.error_message();
  ASSERT_TRUE(rt::RedisServer::Command(admin.get(), {"SELECT", "3"}));
  auto r = rt::RedisServer::Command(admin.get(), {"GET", "2:ns:k"});
  ASSERT_TRUE(r && r->type == REDIS_REPLY_STRING);
  EXPECT_EQ(std::string(r->str, r->len), "in-db-3");
  auto list = rt::RedisServer::Command(admin.get(), {"CLIENT", "LIST"});
  std::string clients(list->str, list->len);
  std::regex plugin_conn("name=prism-plugin-redis [^\n]* db=3 [^\n]* user=prism ");
  std::ptrdiff_t conns = std::distance(
      std::sregex_iterator(clients.begin(), clients.end(), plugin_conn), std::sregex_iterator());
  EXPECT_EQ(conns, 2) << clients;
  p.Signal(SIGTERM);
  ASSERT_EQ(p.Wait(20s), 0) << PluginStderr(dir);
  std::string traces = pt::ReadFile(trace_file);
  EXPECT_EQ(traces.find("s3cr3t"), std::string::npos);
  EXPECT_EQ(traces.find("in-db-3"), std::string::npos);
  auto spans = pt::ReadTraceFile(trace_file);
  const pt::JsonSpan* set = pt::FindSpan(spans, "SET");
  ASSERT_TRUE(set) << traces;
  EXPECT_EQ(set->attrs.at("db.namespace"), "3");
  EXPECT_EQ(set->attrs.at("db.query.text"), "SET 2:ns:k ?");

  // A wrong password stops the plugin at startup with Redis's reason, and
  // the password is in no message.
  {
    std::ofstream pw(dir + "/wrong");
    pw << "not-the-password\n";
  }
  pt::ChildProcess q(PRISM_REDIS_PLUGIN,
                     {"--port", std::to_string(redis.port()), "--user", "prism", "--password-file",
                      dir + "/wrong", "--listen", target},
                     {"OTEL_TRACES_EXPORTER=none"}, dir + "/stderr2");
  EXPECT_EQ(q.Wait(20s), 1);
  std::string err = pt::ReadFile(dir + "/stderr2");
  EXPECT_NE(err.find("redis AUTH: WRONGPASS"), std::string::npos) << err;
  EXPECT_EQ(err.find("not-the-password"), std::string::npos) << err;

  // Settings are checked before anything is sent.
  pt::ChildProcess u(PRISM_REDIS_PLUGIN, {"--user", "prism", "--listen", target},
                     {"OTEL_TRACES_EXPORTER=none"}, dir + "/stderr3");
  EXPECT_EQ(u.Wait(20s), 1);
  EXPECT_NE(pt::ReadFile(dir + "/stderr3").find("--user needs --password-file"), std::string::npos);
}

// requirepass (AUTH without a user) and a database index Redis refuses:
// Open says why, naming neither the password nor anything but Redis's text.
TEST(RedisOpen, PasswordWithoutUserAndRefusedSettings) {
  rt::RedisServer redis({"--requirepass", "pw-without-user"});
  ASSERT_TRUE(redis.ok()) << redis.Log();
  RedisOptions o;
  o.port = redis.port();
  o.pool_size = 1;
  o.password = "pw-without-user";
  auto ok = RedisService::Open(o);
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_EQ((*ok)->connects(), 1);
  o.password = "wrong-password";
  auto wrong = RedisService::Open(o);
  ASSERT_FALSE(wrong.ok());
  EXPECT_EQ(wrong.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(wrong.status().message().find("redis AUTH: WRONGPASS"), std::string::npos)
      << wrong.status();
  EXPECT_EQ(wrong.status().message().find("wrong-password"), std::string::npos);
  o.password = "";
  auto noauth = RedisService::Open(o);
  ASSERT_FALSE(noauth.ok());
  EXPECT_NE(noauth.status().message().find("NOAUTH"), std::string::npos) << noauth.status();
  o.password = "pw-without-user";
  o.db = 99;
  auto db = RedisService::Open(o);
  ASSERT_FALSE(db.ok());
  EXPECT_NE(db.status().message().find("redis SELECT: ERR DB index is out of range"),
            std::string::npos)
      << db.status();
}

// Redis not running at startup: the plugin serves (health SERVING) and
// answers UNAVAILABLE naming the server.
TEST(RedisChildProcess, ServesUnavailableWhileRedisIsDown) {
  std::string dir = pt::MakeTempDir("prism-redis-child-");
  int port = rt::FreePort();
  std::string target = "unix://" + dir + "/redis.sock";
  pt::ChildProcess p(PRISM_REDIS_PLUGIN, {"--port", std::to_string(port), "--listen", target},
                     {"OTEL_TRACES_EXPORTER=none"}, dir + "/stderr");
  ASSERT_TRUE(pt::WaitServing(target, 20s)) << PluginStderr(dir);
  auto stub =
      prism::v1::KeyValue::NewStub(grpc::CreateChannel(target, grpc::InsecureChannelCredentials()));
  prism::v1::GetResponse resp;
  grpc::Status st = rt::KvGet(*stub, "ns", "k", &resp, 2s);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(st.error_message(),
            "redis at 127.0.0.1:" + std::to_string(port) + " is unavailable: Connection refused");
  EXPECT_NE(PluginStderr(dir).find("serving anyway"), std::string::npos) << PluginStderr(dir);
  p.Signal(SIGTERM);
  EXPECT_EQ(p.Wait(20s), 0);
}

}  // namespace
}  // namespace prism::redis
