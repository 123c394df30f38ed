// Interceptors over real sockets (Unix and TCP), sync and callback servers:
// one trace from the client span through the server span to the handler's
// child span, with exact parent links and the RPC attributes.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <thread>

#include "prism/grpc_tracing/client.h"
#include "prism/grpc_tracing/server.h"
#include "prism/tracing/in_memory_recorder.h"
#include "prism/tracing/tracer.h"
#include "prism/v1/kv.grpc.pb.h"

namespace prism::grpc_tracing {
namespace {

using prism::tracing::SpanData;
using prism::tracing::SpanKind;
using prism::tracing::StatusCode;

struct Harness {
  prism::tracing::InMemorySpanRecorder recorder;
  std::shared_ptr<prism::tracing::TracerProvider> provider;
  prism::tracing::Tracer tracer;
  Harness() {
    prism::tracing::TracerProviderOptions o;
    o.processors.push_back(recorder.MakeProcessor());
    o.sampler = prism::tracing::MakeAlwaysOnSampler();
    provider = std::make_shared<prism::tracing::TracerProvider>(std::move(o));
    tracer = provider->GetTracer("test");
  }
};

std::string StrAttr(const SpanData& s, std::string_view key) {
  const auto* v = s.FindAttribute(key);
  if (!v || !std::holds_alternative<std::string>(*v)) return "<none>";
  return std::get<std::string>(*v);
}
int64_t IntAttr(const SpanData& s, std::string_view key) {
  const auto* v = s.FindAttribute(key);
  if (!v || !std::holds_alternative<int64_t>(*v)) return -1;
  return std::get<int64_t>(*v);
}

// Callback service: Get answers with a child span under the server span
// (explicit parent); key "fail-internal" / "fail-invalid" return errors.
class CallbackKv final : public prism::v1::KeyValue::CallbackService {
 public:
  explicit CallbackKv(prism::tracing::Tracer tracer) : tracer_(std::move(tracer)) {}
  grpc::ServerUnaryReactor* Get(grpc::CallbackServerContext* ctx, const prism::v1::GetRequest* req,
                                prism::v1::GetResponse* resp) override {
    auto* reactor = ctx->DefaultReactor();
    prism::tracing::StartSpanOptions o;
    o.parent = ServerSpanContext(ctx);
    auto span = tracer_.StartSpan("handler", std::move(o));
    span.End();
    if (req->key() == "fail-internal") {
      reactor->Finish(grpc::Status(grpc::StatusCode::INTERNAL, "disk on fire"));
    } else if (req->key() == "fail-invalid") {
      reactor->Finish(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "bad key"));
    } else {
      resp->set_found(true);
      resp->set_value(req->key());
      reactor->Finish(grpc::Status::OK);
    }
    return reactor;
  }

 private:
  prism::tracing::Tracer tracer_;
};

// Sync service: the child span uses the thread's current context.
class SyncKv final : public prism::v1::KeyValue::Service {
 public:
  explicit SyncKv(prism::tracing::Tracer tracer) : tracer_(std::move(tracer)) {}
  grpc::Status Get(grpc::ServerContext*, const prism::v1::GetRequest* req,
                   prism::v1::GetResponse* resp) override {
    auto span = tracer_.StartSpan("handler");
    resp->set_found(true);
    resp->set_value(req->key());
    return grpc::Status::OK;
  }

 private:
  prism::tracing::Tracer tracer_;
};

struct Server {
  std::unique_ptr<grpc::Server> server;
  std::string target;
};

Server StartServer(grpc::Service* service, const Harness& h, bool unix_socket) {
  InstallSyncHandlerScopes();
  grpc::ServerBuilder b;
  Server s;
  int port = 0;
  ServerTracingOptions so;
  so.tracer = h.tracer;
  if (unix_socket) {
    std::string path = "/tmp/prism-grpc-tracing-" + std::to_string(getpid()) + ".sock";
    unlink(path.c_str());
    s.target = "unix://" + path;
    b.AddListeningPort(s.target, grpc::InsecureServerCredentials());
    so.server_address = path;
  } else {
    b.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
    so.server_address = "127.0.0.1";
  }
  b.RegisterService(service);
  std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>> f;
  f.push_back(MakeServerInterceptorFactory(so));
  b.experimental().SetInterceptorCreators(std::move(f));
  s.server = b.BuildAndStart();
  if (!unix_socket) {
    s.target = "127.0.0.1:" + std::to_string(port);
  }
  return s;
}

std::unique_ptr<prism::v1::KeyValue::Stub> MakeStub(const std::string& target, const Harness& h) {
  std::vector<std::unique_ptr<grpc::experimental::ClientInterceptorFactoryInterface>> f;
  ClientTracingOptions co;
  co.target = target;
  co.tracer = h.tracer;
  f.push_back(MakeClientInterceptorFactory(co));
  auto channel = grpc::experimental::CreateCustomChannelWithInterceptors(
      target, grpc::InsecureChannelCredentials(), grpc::ChannelArguments(), std::move(f));
  return prism::v1::KeyValue::NewStub(channel);
}

const SpanData* Find(const std::vector<SpanData>& spans, std::string_view name) {
  for (const auto& s : spans) {
    if (s.name == name) return &s;
  }
  return nullptr;
}

// Waits for `n` spans (the server span ends on a grpc thread).
std::vector<SpanData> WaitSpans(const Harness& h, size_t n) {
  for (int i = 0; i < 200 && h.recorder.size() < n; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return h.recorder.spans();
}

void CheckTree(const Harness& h, const prism::tracing::SpanContext& root, bool unix_socket) {
  auto spans = WaitSpans(h, 3);
  ASSERT_EQ(spans.size(), 3u);
  const SpanData* client = nullptr;
  const SpanData* server = nullptr;
  for (const auto& s : spans) {
    if (s.kind == SpanKind::kClient) client = &s;
    if (s.kind == SpanKind::kServer) server = &s;
  }
  const SpanData* handler = Find(spans, "handler");
  ASSERT_TRUE(client && server && handler);
  EXPECT_EQ(client->name, "prism.v1.KeyValue/Get");
  EXPECT_EQ(server->name, "prism.v1.KeyValue/Get");
  EXPECT_EQ(client->context.trace_id(), root.trace_id());
  EXPECT_EQ(client->parent_span_id, root.span_id());
  EXPECT_EQ(server->context.trace_id(), root.trace_id());
  EXPECT_EQ(server->parent_span_id, client->context.span_id());
  EXPECT_TRUE(server->parent_is_remote);
  EXPECT_EQ(handler->context.trace_id(), root.trace_id());
  EXPECT_EQ(handler->parent_span_id, server->context.span_id());
  for (const SpanData* s : {client, server}) {
    EXPECT_EQ(StrAttr(*s, "rpc.system"), "grpc");
    EXPECT_EQ(StrAttr(*s, "rpc.system.name"), "grpc");
    EXPECT_EQ(StrAttr(*s, "rpc.service"), "prism.v1.KeyValue");
    EXPECT_EQ(StrAttr(*s, "rpc.method"), "Get");
    EXPECT_EQ(IntAttr(*s, "rpc.grpc.status_code"), 0);
    EXPECT_EQ(StrAttr(*s, "rpc.status_code"), "OK");
    EXPECT_EQ(s->status, StatusCode::kUnset);
  }
  if (unix_socket) {
    EXPECT_EQ(StrAttr(*client, "server.address").rfind("/tmp/prism-grpc-tracing-", 0), 0u);
    EXPECT_EQ(IntAttr(*client, "server.port"), -1);
  } else {
    EXPECT_EQ(StrAttr(*client, "server.address"), "127.0.0.1");
    EXPECT_GT(IntAttr(*client, "server.port"), 0);
    EXPECT_EQ(StrAttr(*server, "network.peer.address"), "127.0.0.1");
    EXPECT_GT(IntAttr(*server, "network.peer.port"), 0);
  }
}

TEST(GrpcTracing, CallbackServerOverUnixSocket) {
  Harness h;
  CallbackKv service(h.tracer);
  Server s = StartServer(&service, h, /*unix_socket=*/true);
  auto stub = MakeStub(s.target, h);
  prism::tracing::SpanContext root_ctx;
  {
    auto root = h.tracer.StartSpan("root");
    root_ctx = root.context();
    prism::tracing::Scope scope(root);
    grpc::ClientContext ctx;
    prism::v1::GetRequest req;
    req.set_namespace_("ns");
    req.set_key("k");
    prism::v1::GetResponse resp;
    ASSERT_TRUE(stub->Get(&ctx, req, &resp).ok());
    EXPECT_EQ(resp.value(), "k");
  }
  h.recorder.Clear();  // drop the root; re-check below with the others
  // Redo without the root in the recorder so the tree has exactly 3 spans.
  {
    auto root = h.tracer.StartSpan("root2");
    root_ctx = root.context();
    grpc::ClientContext ctx;
    ClientCallParent parent(ctx, root_ctx);  // explicit parent, no Scope
    prism::v1::GetRequest req;
    req.set_namespace_("ns");
    req.set_key("k");
    prism::v1::GetResponse resp;
    ASSERT_TRUE(stub->Get(&ctx, req, &resp).ok());
    CheckTree(h, root_ctx, true);
  }
  s.server->Shutdown();
}

TEST(GrpcTracing, SyncServerOverTcpMakesServerSpanCurrent) {
  Harness h;
  SyncKv service(h.tracer);
  Server s = StartServer(&service, h, /*unix_socket=*/false);
  auto stub = MakeStub(s.target, h);
  auto root = h.tracer.StartSpan("root");
  prism::tracing::SpanContext root_ctx = root.context();
  {
    prism::tracing::Scope scope(root);
    grpc::ClientContext ctx;
    prism::v1::GetRequest req;
    req.set_key("k");
    prism::v1::GetResponse resp;
    ASSERT_TRUE(stub->Get(&ctx, req, &resp).ok());
  }
  CheckTree(h, root_ctx, false);
  s.server->Shutdown();
}

TEST(GrpcTracing, ErrorCodesFollowTheConventions) {
  Harness h;
  CallbackKv service(h.tracer);
  Server s = StartServer(&service, h, true);
  auto stub = MakeStub(s.target, h);
  for (std::string key : {"fail-internal", "fail-invalid"}) {
    h.recorder.Clear();
    grpc::ClientContext ctx;
    prism::v1::GetRequest req;
    req.set_key(key);
    prism::v1::GetResponse resp;
    grpc::Status st = stub->Get(&ctx, req, &resp);
    EXPECT_FALSE(st.ok());
    auto spans = WaitSpans(h, 3);
    const SpanData* client = nullptr;
    const SpanData* server = nullptr;
    for (const auto& sp : spans) {
      if (sp.kind == SpanKind::kClient) client = &sp;
      if (sp.kind == SpanKind::kServer) server = &sp;
    }
    ASSERT_TRUE(client && server);
    EXPECT_EQ(client->status, StatusCode::kError);  // any non-OK code on the client
    if (key == "fail-internal") {
      EXPECT_EQ(server->status, StatusCode::kError);
      EXPECT_EQ(server->status_message, "disk on fire");
      EXPECT_EQ(IntAttr(*server, "rpc.grpc.status_code"), 13);
      EXPECT_EQ(StrAttr(*server, "rpc.status_code"), "INTERNAL");
      EXPECT_EQ(StrAttr(*server, "error.type"), "INTERNAL");
    } else {
      EXPECT_EQ(server->status, StatusCode::kUnset);  // a caller error, not the server's
      EXPECT_EQ(IntAttr(*server, "rpc.grpc.status_code"), 3);
      EXPECT_EQ(client->status_message, "bad key");
    }
  }
  s.server->Shutdown();
}

TEST(GrpcTracing, InvalidTraceparentStartsANewTrace) {
  Harness h;
  CallbackKv service(h.tracer);
  Server s = StartServer(&service, h, true);
  // A plain channel: the header is written by hand.
  auto stub = prism::v1::KeyValue::NewStub(
      grpc::CreateChannel(s.target, grpc::InsecureChannelCredentials()));
  for (std::string tp :
       std::vector<std::string>{"00-00000000000000000000000000000000-0000000000000000-01",
                                "garbage", std::string(5000, 'x')}) {
    h.recorder.Clear();
    grpc::ClientContext ctx;
    ctx.AddMetadata("traceparent", tp);
    prism::v1::GetRequest req;
    req.set_key("k");
    prism::v1::GetResponse resp;
    ASSERT_TRUE(stub->Get(&ctx, req, &resp).ok());
    auto spans = WaitSpans(h, 2);
    const SpanData* server = Find(spans, "prism.v1.KeyValue/Get");
    ASSERT_TRUE(server);
    EXPECT_TRUE(server->context.trace_id().IsValid());
    EXPECT_FALSE(server->parent_span_id.IsValid());
  }
  // A valid one by hand (InjectIntoClientContext) is honoured.
  h.recorder.Clear();
  auto root = h.tracer.StartSpan("root");
  grpc::ClientContext ctx;
  InjectIntoClientContext(ctx, root.context());
  prism::v1::GetRequest req;
  prism::v1::GetResponse resp;
  ASSERT_TRUE(stub->Get(&ctx, req, &resp).ok());
  auto spans = WaitSpans(h, 2);
  const SpanData* server = Find(spans, "prism.v1.KeyValue/Get");
  ASSERT_TRUE(server);
  EXPECT_EQ(server->context.trace_id(), root.context().trace_id());
  EXPECT_EQ(server->parent_span_id, root.context().span_id());
  s.server->Shutdown();
}

TEST(GrpcTracing, DisabledTracerStillPropagates) {
  Harness h;
  CallbackKv service(h.tracer);
  Server s = StartServer(&service, h, true);
  std::vector<std::unique_ptr<grpc::experimental::ClientInterceptorFactoryInterface>> f;
  ClientTracingOptions co;
  co.target = s.target;
  co.tracer = prism::tracing::Tracer();  // disabled
  f.push_back(MakeClientInterceptorFactory(co));
  auto stub = prism::v1::KeyValue::NewStub(grpc::experimental::CreateCustomChannelWithInterceptors(
      s.target, grpc::InsecureChannelCredentials(), grpc::ChannelArguments(), std::move(f)));
  auto root = h.tracer.StartSpan("root");
  prism::tracing::Scope scope(root);
  grpc::ClientContext ctx;
  prism::v1::GetRequest req;
  prism::v1::GetResponse resp;
  ASSERT_TRUE(stub->Get(&ctx, req, &resp).ok());
  auto spans = WaitSpans(h, 2);
  const SpanData* server = Find(spans, "prism.v1.KeyValue/Get");
  ASSERT_TRUE(server);
  EXPECT_EQ(server->parent_span_id, root.context().span_id());
  s.server->Shutdown();
}

}  // namespace
}  // namespace prism::grpc_tracing
