// Publish/subscribe end to end (issue #16): a real nats-server started by
// the test, the real prism-proxy launching prism-plugin-nats, the prism CLI
// and gRPC clients, and the trace file they all write.

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <signal.h>

#include <condition_variable>
#include <deque>
#include <mutex>
#include <nlohmann/json.hpp>
#include <regex>
#include <thread>

#include "auth.h"
#include "nats_server.h"
#include "prism/v1/pubsub.grpc.pb.h"
#include "support.h"
#include "trace_file.h"

namespace prism::e2e {
namespace {

using nlohmann::json;
using namespace std::chrono_literals;
using prism::nats::testing::NatsServer;

// An idle grpc++ 1.51 client reads the proxy's GOAWAY only when its backup
// poller runs (every 5 s by default): a stopping proxy would wait for the
// test's own idle channels. Set before gRPC starts (static initialization).
const bool kFastPoll = setenv("GRPC_CLIENT_CHANNEL_BACKUP_POLL_INTERVAL_MS", "50", 1) == 0;

std::string Config(const NatsServer& nats, const std::string& extra_settings = "") {
  return "namespaces:\n"
         "  events:\n"
         "    plugin:\n"
         "      command: [prism-plugin-nats]\n"
         "      settings: {url: \"" +
         nats.url() + "\", reconnect-wait-ms: \"100\"" + extra_settings + "}\n";
}

std::shared_ptr<grpc::Channel> OwnChannel(const std::string& addr) {
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);  // a connection of its own
  return grpc::CreateCustomChannel(addr, grpc::InsecureChannelCredentials(), args);
}

grpc::Status Publish(prism::v1::PubSub::Stub& stub, const std::string& subject,
                     const std::string& data, const std::string& ns = "events") {
  prism::v1::PublishRequest req;
  req.set_namespace_(ns);
  req.set_subject(subject);
  req.set_data(data);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + 5s);
  prism::v1::PublishResponse resp;
  return stub.Publish(&ctx, req, &resp);
}

// One Subscribe stream read by its own thread into a queue; `paused` holds
// the reading back (a slow subscriber).
class Subscriber {
 public:
  Subscriber(std::shared_ptr<grpc::Channel> channel, const std::string& subject,
             bool paused = false, const std::string& ns = "events")
      : stub_(prism::v1::PubSub::NewStub(std::move(channel))), paused_(paused) {
    prism::v1::SubscribeRequest req;
    req.set_namespace_(ns);
    req.set_subject(subject);
    reader_ = stub_->Subscribe(&ctx_, req);
    thread_ = std::thread([this] { Run(); });
  }
  ~Subscriber() {
    ctx_.TryCancel();
    Resume();
    thread_.join();
  }
  // True once the proxy sent the response headers: the subscription is live.
  bool WaitSubscribed(std::chrono::milliseconds timeout = 10s) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, timeout, [&] { return subscribed_ || done_; }) && subscribed_;
  }
  bool WaitFor(size_t n, std::chrono::milliseconds timeout = 10s) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, timeout, [&] { return messages_.size() >= n || done_; }) &&
           messages_.size() >= n;
  }
  std::vector<prism::v1::Message> messages() {
    std::lock_guard<std::mutex> lock(mu_);
    return {messages_.begin(), messages_.end()};
  }
  size_t count() {
    std::lock_guard<std::mutex> lock(mu_);
    return messages_.size();
  }
  void Resume() {
    std::lock_guard<std::mutex> lock(mu_);
    paused_ = false;
    cv_.notify_all();
  }
  void Cancel() { ctx_.TryCancel(); }
  grpc::Status WaitDone() {
    thread_.join();
    thread_ = std::thread([] {});
    return status_;
  }

 private:
  void Run() {
    reader_->WaitForInitialMetadata();
    {
      std::lock_guard<std::mutex> lock(mu_);
      subscribed_ = ctx_.GetServerInitialMetadata().count("x-request-id") > 0;
      cv_.notify_all();
    }
    prism::v1::Message m;
    for (;;) {
      {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [&] { return !paused_; });
      }
      if (!reader_->Read(&m)) break;
      std::lock_guard<std::mutex> lock(mu_);
      messages_.push_back(m);
      cv_.notify_all();
    }
    status_ = reader_->Finish();
    std::lock_guard<std::mutex> lock(mu_);
    done_ = true;
    cv_.notify_all();
  }

  std::unique_ptr<prism::v1::PubSub::Stub> stub_;
  grpc::ClientContext ctx_;
  std::unique_ptr<grpc::ClientReader<prism::v1::Message>> reader_;
  std::thread thread_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<prism::v1::Message> messages_;
  bool paused_, subscribed_ = false, done_ = false;
  grpc::Status status_;
};

class PubSubE2E : public ::testing::Test {
 protected:
  void Start(const std::string& extra_settings = "") {
    ASSERT_TRUE(nats_.ok()) << nats_.Log();
    dir_ = MakeTempDir();
    proxy_ = std::make_unique<Proxy>(dir_, Config(nats_, extra_settings));
    ASSERT_TRUE(proxy_->ok()) << ReadFile(proxy_->stderr_path());
    env_ = {{"PRISM_ADDR", proxy_->address()},
            {"PRISM_TRACE_FILE", proxy_->trace_file()},
            {"OTEL_BSP_SCHEDULE_DELAY", "100"}};
    stub_ = prism::v1::PubSub::NewStub(OwnChannel(proxy_->address()));
    baseline_ = nats_.Subscriptions();
    ASSERT_GE(baseline_, 0);
  }
  // Waits until nats-server holds `want` subscriptions; the last count read.
  int WaitSubscriptions(int want, std::chrono::milliseconds timeout = 10s) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    int n = nats_.Subscriptions();
    while (n != want && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(50ms);
      n = nats_.Subscriptions();
    }
    return n;
  }

  NatsServer nats_;
  std::string dir_;
  std::unique_ptr<Proxy> proxy_;
  std::map<std::string, std::string> env_;
  std::unique_ptr<prism::v1::PubSub::Stub> stub_;
  int baseline_ = 0;
};

std::string TraceIdOf(const std::string& err) {
  std::smatch m;
  std::regex re("trace ([0-9a-f]{32})");
  return std::regex_search(err, m, re) ? std::string(m[1]) : "";
}

const prism::cli::SpanRecord* Find(const std::vector<prism::cli::SpanRecord>& spans,
                                   const std::string& service, const std::string& name, int kind) {
  for (const auto& s : spans) {
    if (s.service == service && s.name == name && s.kind == kind) return &s;
  }
  return nullptr;
}

// `prism pub` reaches `prism sub` through the proxy, and one trace holds the
// whole chain: CLI -> proxy -> plugin PRODUCER -> plugin CONSUMER (child of
// the PRODUCER) -> proxy delivery -> the subscriber's CONSUMER span.
TEST_F(PubSubE2E, PublishReachesSubscriberInOneTrace) {
  Start();
  Process sub(CliBinary(), {"sub", "events", "orders", "--count", "1", "--json"}, env_,
              dir_ + "/sub.stderr");
  ASSERT_NE(sub.WaitForLine("\"subscribed\"", 10s), "") << ReadFile(dir_ + "/sub.stderr");
  auto pub = RunProcess(CliBinary(), {"pub", "events", "orders", "hello nats"}, env_);
  ASSERT_EQ(pub.exit_code, 0) << pub.err;
  EXPECT_EQ(pub.out, "published\n");
  const std::string trace_id = TraceIdOf(pub.err);
  ASSERT_EQ(trace_id.size(), 32u) << pub.err;
  ASSERT_EQ(sub.Wait(10s), 0) << ReadFile(dir_ + "/sub.stderr");
  std::string line = sub.output().substr(sub.output().find('\n') + 1);
  json got = json::parse(line.substr(0, line.find('\n')));
  EXPECT_EQ(got["subject"], "orders");
  EXPECT_EQ(got["data"], "hello nats");
  EXPECT_EQ(got["trace_id"], trace_id) << "the subscriber prints the publisher's trace id";
  EXPECT_EQ(got["dropped"], 0);

  const std::vector<prism::cli::SpanRecord>* spans = nullptr;
  std::optional<prism::cli::TraceFile> file;
  for (int i = 0; i < 100; ++i) {
    auto f = prism::cli::TraceFile::Load(proxy_->trace_file(), trace_id, true);
    ASSERT_TRUE(f.ok()) << f.status();
    file.emplace(std::move(*f));
    spans = file->Spans(trace_id);
    if (spans && Find(*spans, "prism-cli", "process orders", 5) &&
        Find(*spans, "prism-plugin-nats", "process orders", 5) &&
        Find(*spans, "prism-proxy", "prism.pubsub.deliver", 1))
      break;
    std::this_thread::sleep_for(100ms);
  }
  ASSERT_NE(spans, nullptr);
  auto cli_pub = Find(*spans, "prism-cli", "prism.v1.PubSub/Publish", 3);
  auto proxy_server = Find(*spans, "prism-proxy", "prism.v1.PubSub/Publish", 2);
  auto proxy_client = Find(*spans, "prism-proxy", "prism.v1.PubSub/Publish", 3);
  auto plugin_server = Find(*spans, "prism-plugin-nats", "prism.v1.PubSub/Publish", 2);
  auto producer = Find(*spans, "prism-plugin-nats", "send orders", 4);
  auto consumer = Find(*spans, "prism-plugin-nats", "process orders", 5);
  auto deliver = Find(*spans, "prism-proxy", "prism.pubsub.deliver", 1);
  auto cli_consumer = Find(*spans, "prism-cli", "process orders", 5);
  for (auto* s : {cli_pub, proxy_server, proxy_client, plugin_server, producer, consumer, deliver,
                  cli_consumer}) {
    ASSERT_NE(s, nullptr) << "a span of the chain is missing; spans: " << spans->size();
  }
  EXPECT_EQ(proxy_server->parent_span_id, cli_pub->span_id);
  EXPECT_EQ(proxy_client->parent_span_id, proxy_server->span_id);
  EXPECT_EQ(plugin_server->parent_span_id, proxy_client->span_id);
  EXPECT_EQ(producer->parent_span_id, plugin_server->span_id);
  EXPECT_EQ(consumer->parent_span_id, producer->span_id) << "single message: parent = producer";
  EXPECT_EQ(deliver->parent_span_id, consumer->span_id);
  EXPECT_EQ(cli_consumer->parent_span_id, deliver->span_id);
  EXPECT_EQ(producer->attributes["messaging.system"], "nats");
  EXPECT_EQ(producer->attributes["messaging.operation.type"], "send");
  EXPECT_EQ(producer->attributes["messaging.destination.name"], "orders");
  EXPECT_EQ(producer->attributes["messaging.message.body.size"], 10);
  EXPECT_EQ(consumer->attributes["messaging.operation.type"], "process");
  auto auth = Find(*spans, "prism-proxy", "prism.auth.verify", 1);
  ASSERT_NE(auth, nullptr);
  EXPECT_EQ(auth->attributes["prism.access"], "publish");
}

// nats-server restarts under a live subscription: publishes are UNAVAILABLE
// while the plugin reconnects, then flow again to the same stream.
TEST_F(PubSubE2E, ServerRestartMidRun) {
  Start();
  Subscriber sub(OwnChannel(proxy_->address()), "orders");
  ASSERT_TRUE(sub.WaitSubscribed());
  ASSERT_TRUE(Publish(*stub_, "orders", "before").ok());
  ASSERT_TRUE(sub.WaitFor(1));
  nats_.Kill();
  grpc::Status down;
  for (int i = 0; i < 100; ++i) {
    down = Publish(*stub_, "orders", "during");
    if (!down.ok()) break;
    std::this_thread::sleep_for(20ms);
  }
  EXPECT_EQ(down.error_code(), grpc::StatusCode::UNAVAILABLE) << down.error_message();
  EXPECT_NE(down.error_message().find("reconnecting"), std::string::npos) << down.error_message();
  ASSERT_TRUE(nats_.Restart()) << nats_.Log();
  bool delivered = false;
  for (int i = 0; i < 100 && !delivered; ++i) {
    if (Publish(*stub_, "orders", "after").ok()) {
      delivered = sub.WaitFor(sub.count() + 1, 500ms);
    } else {
      std::this_thread::sleep_for(50ms);
    }
  }
  ASSERT_TRUE(delivered) << "no message after the restart reached the subscriber";
  auto got = sub.messages();
  EXPECT_EQ(got.front().data(), "before");
  EXPECT_EQ(got.back().data(), "after");
}

// 100 subscribers through the proxy each get the message; all their NATS
// subscriptions go when they cancel.
TEST_F(PubSubE2E, HundredSubscribers) {
  Start();
  std::vector<std::shared_ptr<grpc::Channel>> channels;
  for (int i = 0; i < 4; ++i) channels.push_back(OwnChannel(proxy_->address()));
  std::vector<std::unique_ptr<Subscriber>> subs;
  for (int i = 0; i < 100; ++i) {
    subs.push_back(std::make_unique<Subscriber>(channels[i % 4], "fanout"));
  }
  for (auto& s : subs) ASSERT_TRUE(s->WaitSubscribed());
  EXPECT_EQ(nats_.Subscriptions(), baseline_ + 100);
  ASSERT_TRUE(Publish(*stub_, "fanout", "to all").ok());
  std::string trace_id;
  for (auto& s : subs) {
    ASSERT_TRUE(s->WaitFor(1));
    auto m = s->messages().front();
    EXPECT_EQ(m.data(), "to all");
    if (trace_id.empty()) trace_id = m.traceparent().substr(3, 32);
    EXPECT_EQ(m.traceparent().substr(3, 32), trace_id);
  }
  subs.clear();
  EXPECT_EQ(WaitSubscriptions(baseline_), baseline_);
}

// A subscriber that does not read loses messages, counted and reported to it
// alone; a fast one at the same time gets every message.
TEST_F(PubSubE2E, SlowSubscriberDropsFastOneKeepsPace) {
  Start(", buffer-messages: \"32\"");
  Subscriber fast(OwnChannel(proxy_->address()), "load");
  Subscriber slow(OwnChannel(proxy_->address()), "load", /*paused=*/true);
  ASSERT_TRUE(fast.WaitSubscribed());
  ASSERT_TRUE(slow.WaitSubscribed());
  const int n = 1500;
  const std::string data(16 * 1024, 'x');  // 24 MB in all: more than the windows hold
  for (int i = 0; i < n; ++i) ASSERT_TRUE(Publish(*stub_, "load", data).ok()) << i;
  ASSERT_TRUE(fast.WaitFor(n, 30s)) << fast.count();
  slow.Resume();
  // Drain what the slow one's buffers held, then one more message carries the count.
  size_t seen = 0;
  while (slow.WaitFor(seen + 1, 1s)) seen = slow.count();
  ASSERT_TRUE(Publish(*stub_, "load", "last").ok());
  ASSERT_TRUE(fast.WaitFor(n + 1));
  ASSERT_TRUE(slow.WaitFor(seen + 1));
  for (const auto& m : fast.messages()) ASSERT_EQ(m.dropped_total(), 0u);
  auto got = slow.messages();
  EXPECT_EQ(got.back().data(), "last");
  uint64_t dropped = 0;
  for (const auto& m : got) dropped += m.dropped();
  EXPECT_GT(dropped, 0u) << "the slow subscriber dropped nothing: the test did not load it";
  EXPECT_EQ(got.back().dropped_total(), dropped);
  EXPECT_EQ(got.size() + dropped, static_cast<size_t>(n + 1))
      << "every message delivered or counted";
}

// A subscriber killed without a goodbye: its NATS subscription goes.
TEST_F(PubSubE2E, ClientThatDisappearsLeavesNoSubscription) {
  Start();
  Process sub(CliBinary(), {"sub", "events", "gone.*", "--json"}, env_, dir_ + "/sub.stderr");
  ASSERT_NE(sub.WaitForLine("\"subscribed\"", 10s), "") << ReadFile(dir_ + "/sub.stderr");
  EXPECT_EQ(nats_.Subscriptions(), baseline_ + 1);
  sub.Signal(SIGKILL);
  sub.Wait(5s);
  EXPECT_EQ(WaitSubscriptions(baseline_), baseline_) << "a leaked NATS subscription";
  // Ctrl-C ends `prism sub` cleanly (exit 0) and also ends the subscription.
  Process sub2(CliBinary(), {"sub", "events", "gone.*"}, env_, dir_ + "/sub2.stderr");
  ASSERT_EQ(WaitSubscriptions(baseline_ + 1), baseline_ + 1) << ReadFile(dir_ + "/sub2.stderr");
  sub2.Signal(SIGINT);
  EXPECT_EQ(sub2.Wait(10s), 0) << ReadFile(dir_ + "/sub2.stderr");
  EXPECT_EQ(WaitSubscriptions(baseline_), baseline_);
}

// Bad input: INVALID_ARGUMENT with a message, at the limits' boundaries.
TEST_F(PubSubE2E, BadInput) {
  Start(", max-data-bytes: \"4096\"");
  EXPECT_TRUE(Publish(*stub_, "orders", std::string(4096, 'd')).ok());
  grpc::Status over = Publish(*stub_, "orders", std::string(4097, 'd'));
  EXPECT_EQ(over.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(over.error_message().find("limit is 4096"), std::string::npos) << over.error_message();
  EXPECT_TRUE(Publish(*stub_, std::string(256, 's'), "x").ok());
  for (const std::string& subject : {std::string(), std::string("a b"), std::string("a.*"),
                                     std::string("a..b"), std::string(257, 's')}) {
    grpc::Status s = Publish(*stub_, subject, "x");
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << subject;
    EXPECT_FALSE(s.error_message().empty());
  }
  auto cli = RunProcess(CliBinary(), {"pub", "events", "", "x"}, env_);
  EXPECT_EQ(cli.exit_code, 1);
  EXPECT_NE(cli.err.find("INVALID_ARGUMENT: subject is empty"), std::string::npos) << cli.err;
  auto bad_sub = RunProcess(CliBinary(), {"sub", "events", "a.>.b"}, env_);
  EXPECT_EQ(bad_sub.exit_code, 1);
  EXPECT_NE(bad_sub.err.find("INVALID_ARGUMENT"), std::string::npos) << bad_sub.err;
  auto unknown = RunProcess(CliBinary(), {"pub", "nope", "orders", "x"}, env_);
  EXPECT_EQ(unknown.exit_code, 1);
  EXPECT_NE(unknown.err.find("NOT_FOUND: unknown namespace 'nope'"), std::string::npos)
      << unknown.err;
  auto usage = RunProcess(CliBinary(), {"sub", "events"}, env_);
  EXPECT_EQ(usage.exit_code, 2);
}

// publish and subscribe are rights of their own; read/write grant neither.
TEST_F(PubSubE2E, PublishAndSubscribeRights) {
  ASSERT_TRUE(nats_.ok());
  dir_ = MakeTempDir();
  const std::string kv = "kv-token", pub = "pub-token", sub = "sub-token";
  std::string yaml =
      Config(nats_) + "tokens:\n" + "  - {name: kv, sha256: " + prism::proxy::Sha256Hex(kv) +
      ", rights: {events: [read, write]}}\n" +
      "  - {name: pub, sha256: " + prism::proxy::Sha256Hex(pub) + ", rights: {events: publish}}\n" +
      "  - {name: sub, sha256: " + prism::proxy::Sha256Hex(sub) +
      ", rights: {events: subscribe}}\n";
  proxy_ = std::make_unique<Proxy>(dir_, yaml);
  ASSERT_TRUE(proxy_->ok()) << ReadFile(proxy_->stderr_path());
  std::map<std::string, std::string> env = {{"PRISM_ADDR", proxy_->address()},
                                            {"OTEL_TRACES_EXPORTER", "none"}};
  auto run = [&](const std::vector<std::string>& args, const std::string& token) {
    auto e = env;
    e["PRISM_TOKEN"] = token;
    return RunProcess(CliBinary(), args, e);
  };
  auto denied = run({"pub", "events", "orders", "x"}, kv);
  EXPECT_EQ(denied.exit_code, 1);
  EXPECT_NE(denied.err.find("PERMISSION_DENIED: token 'kv' has no publish right"),
            std::string::npos)
      << denied.err;
  EXPECT_EQ(run({"pub", "events", "orders", "x"}, pub).exit_code, 0);
  auto no_sub = run({"sub", "events", "orders", "--count", "1"}, pub);
  EXPECT_EQ(no_sub.exit_code, 1);
  EXPECT_NE(no_sub.err.find("has no subscribe right"), std::string::npos) << no_sub.err;
  auto kv_sub = run({"sub", "events", "orders", "--count", "1"}, kv);
  EXPECT_NE(kv_sub.err.find("has no subscribe right"), std::string::npos) << kv_sub.err;
  // The subscribe token subscribes (and is refused a publish).
  auto e = env;
  e["PRISM_TOKEN"] = sub;
  Process p(CliBinary(), {"sub", "events", "orders", "--count", "1", "--json"}, e,
            dir_ + "/sub.stderr");
  ASSERT_NE(p.WaitForLine("\"subscribed\"", 10s), "") << ReadFile(dir_ + "/sub.stderr");
  EXPECT_EQ(run({"pub", "events", "orders", "x"}, sub).exit_code, 1);
  EXPECT_EQ(run({"pub", "events", "orders", "for sub"}, pub).exit_code, 0);
  EXPECT_EQ(p.Wait(10s), 0);
  EXPECT_NE(p.output().find("\"data\":\"for sub\""), std::string::npos) << p.output();
}

// A stopping proxy ends open subscriptions at once instead of waiting
// drain_timeout for streams that never end by themselves.
TEST_F(PubSubE2E, ProxyStopEndsSubscriptions) {
  Start();
  Subscriber s(OwnChannel(proxy_->address()), "orders");
  ASSERT_TRUE(s.WaitSubscribed());
  auto started = std::chrono::steady_clock::now();
  EXPECT_EQ(proxy_->Stop(), 0);
  EXPECT_LT(std::chrono::steady_clock::now() - started, 5s);
  grpc::Status st = s.WaitDone();
  EXPECT_EQ(st.error_code(), grpc::StatusCode::CANCELLED) << st.error_message();
  EXPECT_EQ(WaitSubscriptions(baseline_), baseline_);
}

}  // namespace
}  // namespace prism::e2e
