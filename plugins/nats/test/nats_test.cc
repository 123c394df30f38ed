// prism-plugin-nats on its own: subject rules, and the plugin as a child
// process against a real nats-server (headers on the wire, spans, limits,
// a cancelled stream's subscription).
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <nats/nats.h>

#include <thread>

#include "nats_server.h"
#include "prism/v1/pubsub.grpc.pb.h"
#include "subject.h"
#include "testing.h"

namespace {

namespace pn = prism::nats;
namespace pt = prism::plugin::testing;

TEST(Subject, PublishRules) {
  EXPECT_TRUE(pn::ValidatePublishSubject("orders").ok());
  EXPECT_TRUE(pn::ValidatePublishSubject("orders.eu.created").ok());
  for (const char* bad :
       {"", " ", "a b", "a.", ".a", "a..b", "a.*", "a.>", "*", ">", "a\tb", "caf\xc3\xa9"}) {
    absl::Status s = pn::ValidatePublishSubject(bad);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << "'" << bad << "'";
    EXPECT_FALSE(s.message().empty());
  }
  EXPECT_TRUE(pn::ValidatePublishSubject(std::string(pn::kMaxSubjectBytes, 'a')).ok());
  absl::Status over = pn::ValidatePublishSubject(std::string(pn::kMaxSubjectBytes + 1, 'a'));
  EXPECT_EQ(over.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(over.message().find("limit is 256"), std::string::npos) << over.message();
}

TEST(Subject, SubscribeRules) {
  for (const char* good : {"orders", "orders.*", "orders.>", "*.created", ">", "*.*.x"}) {
    EXPECT_TRUE(pn::ValidateSubscribeSubject(good).ok()) << good;
  }
  for (const char* bad : {"", "a.>.b", "a*", "a.b*", ">.a", "a..b", "a b"}) {
    EXPECT_EQ(pn::ValidateSubscribeSubject(bad).code(), absl::StatusCode::kInvalidArgument) << bad;
  }
  EXPECT_TRUE(pn::ValidateQueueGroup("").ok());
  EXPECT_TRUE(pn::ValidateQueueGroup(std::string(pn::kMaxQueueGroupBytes, 'q')).ok());
  EXPECT_FALSE(pn::ValidateQueueGroup(std::string(pn::kMaxQueueGroupBytes + 1, 'q')).ok());
  EXPECT_FALSE(pn::ValidateQueueGroup("a b").ok());
}

TEST(Subject, TemporarySubjectsStayOutOfSpanNames) {
  EXPECT_EQ(pn::SpanName("send", "orders"), "send orders");
  EXPECT_EQ(pn::SpanName("process", "_INBOX.abc123.1"), "process");
  EXPECT_EQ(pn::SpanName("send", "_INBOX.x"), "send");
}

// The plugin binary against a real nats-server.
class NatsPlugin : public ::testing::Test {
 protected:
  void SetUp() override {
    addr_ = "127.0.0.1:" + std::to_string(pt::FreePort());
    dir_ = pt::MakeTempDir("prism-nats-plugin-");
    ASSERT_TRUE(server_.ok()) << server_.Log();
    trace_file_ = dir_ + "/traces.jsonl";
    plugin_ = std::make_unique<pt::ChildProcess>(
        PRISM_NATS_PLUGIN,
        std::vector<std::string>{"--listen", addr_, "--url", server_.url(), "--max-data-bytes",
                                 "1000"},
        std::vector<std::string>{"PRISM_TRACE_FILE=" + trace_file_, "OTEL_BSP_SCHEDULE_DELAY=50"},
        dir_ + "/plugin.log");
    ASSERT_TRUE(pt::WaitServing(addr_, std::chrono::seconds(10)))
        << pt::ReadFile(dir_ + "/plugin.log");
    stub_ =
        prism::v1::PubSub::NewStub(grpc::CreateChannel(addr_, grpc::InsecureChannelCredentials()));
  }
  void TearDown() override {
    if (plugin_) {
      plugin_->Signal(SIGTERM);
      EXPECT_EQ(plugin_->Wait(std::chrono::seconds(10)), 0);
    }
  }
  grpc::Status Publish(const std::string& subject, const std::string& data) {
    prism::v1::PublishRequest req;
    req.set_namespace_("events");
    req.set_subject(subject);
    req.set_data(data);
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
    prism::v1::PublishResponse resp;
    return stub_->Publish(&ctx, req, &resp);
  }
  std::vector<pt::JsonSpan> SpansWhen(
      const std::function<bool(const std::vector<pt::JsonSpan>&)>& ready) {
    std::vector<pt::JsonSpan> spans;
    for (int i = 0; i < 100; ++i) {
      spans = pt::ReadTraceFile(trace_file_);
      if (ready(spans)) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return spans;
  }

  pn::testing::NatsServer server_;
  std::string dir_, trace_file_, addr_;
  std::unique_ptr<pt::ChildProcess> plugin_;
  std::unique_ptr<prism::v1::PubSub::Stub> stub_;
};

// A raw cnats connection to the test's server.
struct RawNats {
  explicit RawNats(const std::string& url) {
    ok = natsConnection_ConnectTo(&nc, url.c_str()) == NATS_OK;
  }
  ~RawNats() {
    if (nc) natsConnection_Destroy(nc);
  }
  natsConnection* nc = nullptr;
  bool ok = false;
};

TEST_F(NatsPlugin, PublishPutsLowerCaseW3CHeadersAndOneProducerSpan) {
  RawNats raw(server_.url());
  ASSERT_TRUE(raw.ok);
  natsSubscription* sub = nullptr;
  ASSERT_EQ(natsConnection_SubscribeSync(&sub, raw.nc, "orders"), NATS_OK);
  ASSERT_EQ(natsConnection_Flush(raw.nc), NATS_OK);
  ASSERT_TRUE(Publish("orders", "hello").ok());
  natsMsg* msg = nullptr;
  ASSERT_EQ(natsSubscription_NextMsg(&msg, sub, 5000), NATS_OK);
  EXPECT_EQ(std::string(natsMsg_GetData(msg), natsMsg_GetDataLength(msg)), "hello");
  const char* tp = nullptr;
  ASSERT_EQ(natsMsgHeader_Get(msg, "traceparent", &tp), NATS_OK) << "lower-case key expected";
  std::string traceparent = tp;
  natsMsg_Destroy(msg);
  natsSubscription_Destroy(sub);
  ASSERT_EQ(traceparent.size(), 55u) << traceparent;
  auto spans = SpansWhen([](auto& s) { return pt::FindSpan(s, "send orders") != nullptr; });
  const pt::JsonSpan* send = pt::FindSpan(spans, "send orders");
  ASSERT_NE(send, nullptr);
  EXPECT_EQ(send->kind, 4);  // PRODUCER
  EXPECT_EQ(traceparent.substr(3, 32), send->trace_id);
  EXPECT_EQ(traceparent.substr(36, 16), send->span_id);
  EXPECT_EQ(send->attrs.at("messaging.system"), "nats");
  EXPECT_EQ(send->attrs.at("messaging.destination.name"), "orders");
  EXPECT_EQ(send->attrs.at("messaging.operation.type"), "send");
  EXPECT_EQ(send->attrs.at("messaging.message.body.size"), "5");
  const pt::JsonSpan* server = pt::FindSpan(spans, "prism.v1.PubSub/Publish");
  ASSERT_NE(server, nullptr);
  EXPECT_EQ(send->parent_span_id, server->span_id);
}

TEST_F(NatsPlugin, ConsumerSpanReadsAnyCaseHeaderAndCancelEndsTheSubscription) {
  const int before = server_.Subscriptions();
  ASSERT_GE(before, 0);
  {
    grpc::ClientContext ctx;
    prism::v1::SubscribeRequest req;
    req.set_namespace_("events");
    req.set_subject("orders.*");
    req.set_queue_group("workers");
    auto reader = stub_->Subscribe(&ctx, req);
    reader->WaitForInitialMetadata();
    EXPECT_EQ(server_.Subscriptions(), before + 1);
    // Another client's publish with a mixed-case header key.
    RawNats raw(server_.url());
    ASSERT_TRUE(raw.ok);
    natsMsg* out = nullptr;
    ASSERT_EQ(natsMsg_Create(&out, "orders.eu", nullptr, "x", 1), NATS_OK);
    const std::string parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    ASSERT_EQ(natsMsgHeader_Set(out, "TraceParent", parent.c_str()), NATS_OK);
    ASSERT_EQ(natsConnection_PublishMsg(raw.nc, out), NATS_OK);
    natsMsg_Destroy(out);
    ASSERT_EQ(natsConnection_Flush(raw.nc), NATS_OK);
    prism::v1::Message m;
    ASSERT_TRUE(reader->Read(&m));
    EXPECT_EQ(m.subject(), "orders.eu");
    EXPECT_EQ(m.data(), "x");
    EXPECT_EQ(m.traceparent().substr(3, 32), "0af7651916cd43dd8448eb211c80319c");
    EXPECT_EQ(m.dropped(), 0u);
    auto spans = SpansWhen([](auto& s) { return pt::FindSpan(s, "process orders.*") != nullptr; });
    const pt::JsonSpan* process = pt::FindSpan(spans, "process orders.*");
    ASSERT_NE(process, nullptr);
    EXPECT_EQ(process->kind, 5);  // CONSUMER
    EXPECT_EQ(process->trace_id, "0af7651916cd43dd8448eb211c80319c");
    EXPECT_EQ(process->parent_span_id, "b7ad6b7169203331");
    EXPECT_EQ(process->attrs.at("messaging.destination.name"), "orders.eu");
    EXPECT_EQ(process->attrs.at("messaging.destination.template"), "orders.*");
    EXPECT_EQ(process->attrs.at("messaging.consumer.group.name"), "workers");
    EXPECT_EQ(process->attrs.at("messaging.operation.type"), "process");
    EXPECT_EQ(m.traceparent().substr(36, 16), process->span_id);
    ctx.TryCancel();
  }
  int now = -1;
  for (int i = 0; i < 100 && (now = server_.Subscriptions()) != before; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_EQ(now, before) << "the cancelled stream's NATS subscription is still there";
}

TEST_F(NatsPlugin, BadInputIsInvalidArgumentWithAMessage) {
  EXPECT_TRUE(Publish("orders", std::string(1000, 'd')).ok());  // --max-data-bytes 1000
  grpc::Status over = Publish("orders", std::string(1001, 'd'));
  EXPECT_EQ(over.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(over.error_message().find("limit is 1000"), std::string::npos) << over.error_message();
  for (const std::string& subject : {std::string(), std::string("a b"), std::string("a.*"),
                                     std::string("a..b"), std::string(257, 's')}) {
    grpc::Status s = Publish(subject, "x");
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << subject;
    EXPECT_FALSE(s.error_message().empty());
  }
  EXPECT_TRUE(Publish(std::string(256, 's'), "x").ok());
  grpc::ClientContext ctx;
  prism::v1::SubscribeRequest req;
  req.set_namespace_("events");
  req.set_subject("a.>.b");
  auto reader = stub_->Subscribe(&ctx, req);
  prism::v1::Message m;
  EXPECT_FALSE(reader->Read(&m));
  grpc::Status s = reader->Finish();
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(s.error_message().find("'>'"), std::string::npos) << s.error_message();
}

}  // namespace
