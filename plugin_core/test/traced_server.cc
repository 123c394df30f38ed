#include "traced_server.h"

#include <gtest/gtest.h>

#include <chrono>
#include <thread>

#include "prism/grpc_tracing/client.h"
#include "prism/grpc_tracing/server.h"

namespace prism::plugin::testing {

TracedKvServer::TracedKvServer() {
  prism::grpc_tracing::InstallSyncHandlerScopes();
  prism::tracing::TracerProviderOptions po;
  po.processors.push_back(recorder.MakeProcessor());
  provider = std::make_shared<prism::tracing::TracerProvider>(std::move(po));
  client_tracer = provider->GetTracer("test");
}

prism::tracing::Tracer TracedKvServer::Tracer(const std::string& scope) const {
  return provider->GetTracer(scope);
}

bool TracedKvServer::Start(grpc::Service* service, const std::string& dir,
                           const std::string& socket) {
  Stop();
  socket_path = dir + "/" + socket;
  std::string target = "unix://" + socket_path;
  grpc::ServerBuilder b;
  b.AddListeningPort(target, grpc::InsecureServerCredentials());
  b.RegisterService(service);
  prism::grpc_tracing::ServerTracingOptions so;
  so.server_address = socket_path;
  so.tracer = provider->GetTracer("prism.grpc_tracing");
  std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>> sf;
  sf.push_back(prism::grpc_tracing::MakeServerInterceptorFactory(so));
  b.experimental().SetInterceptorCreators(std::move(sf));
  server = b.BuildAndStart();
  if (!server) return false;
  std::vector<std::unique_ptr<grpc::experimental::ClientInterceptorFactoryInterface>> cf;
  prism::grpc_tracing::ClientTracingOptions co;
  co.target = target;
  co.tracer = client_tracer;
  cf.push_back(prism::grpc_tracing::MakeClientInterceptorFactory(co));
  stub = prism::v1::KeyValue::NewStub(grpc::experimental::CreateCustomChannelWithInterceptors(
      target, grpc::InsecureChannelCredentials(), grpc::ChannelArguments(), std::move(cf)));
  return true;
}

void TracedKvServer::Stop() {
  if (server) server->Shutdown();
  server.reset();
}

std::vector<prism::tracing::SpanData> TracedKvServer::WaitSpans(size_t n) {
  for (int i = 0; i < 400 && recorder.size() < n; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return recorder.spans();
}

grpc::Status KvSet(prism::v1::KeyValue::Stub& stub, const std::string& ns, const std::string& key,
                   const std::string& value, std::chrono::milliseconds timeout,
                   const std::map<std::string, std::string>& metadata) {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + timeout);
  for (const auto& [k, v] : metadata) ctx.AddMetadata(k, v);
  prism::v1::SetRequest req;
  req.set_namespace_(ns);
  req.set_key(key);
  req.set_value(value);
  prism::v1::SetResponse resp;
  return stub.Set(&ctx, req, &resp);
}

grpc::Status KvGet(prism::v1::KeyValue::Stub& stub, const std::string& ns, const std::string& key,
                   prism::v1::GetResponse* resp, std::chrono::milliseconds timeout) {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + timeout);
  prism::v1::GetRequest req;
  req.set_namespace_(ns);
  req.set_key(key);
  return stub.Get(&ctx, req, resp);
}

void ExpectKeyValueMethods(prism::v1::KeyValue::Stub& stub, const std::string& ns,
                           const std::vector<std::pair<std::string, std::string>>& items) {
  ASSERT_GE(items.size(), 2u);
  auto ctx = [] {
    auto c = std::make_unique<grpc::ClientContext>();
    c->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    return c;
  };
  prism::v1::BatchSetRequest bset;
  bset.set_namespace_(ns);
  for (const auto& [k, v] : items) {
    auto* it = bset.add_items();
    it->set_key(k);
    it->set_value(v);
  }
  prism::v1::BatchSetResponse bset_resp;
  grpc::Status st = stub.BatchSet(ctx().get(), bset, &bset_resp);
  ASSERT_TRUE(st.ok()) << st.error_message();

  prism::v1::BatchGetRequest bget;
  bget.set_namespace_(ns);
  for (const auto& kv : items) bget.add_keys(kv.first);
  bget.add_keys("missing-key");
  prism::v1::BatchGetResponse bget_resp;
  st = stub.BatchGet(ctx().get(), bget, &bget_resp);
  ASSERT_TRUE(st.ok()) << st.error_message();
  ASSERT_EQ(bget_resp.results_size(), static_cast<int>(items.size()) + 1);
  for (size_t i = 0; i < items.size(); ++i) {
    EXPECT_TRUE(bget_resp.results(i).found()) << items[i].first;
    EXPECT_EQ(bget_resp.results(i).value(), items[i].second) << items[i].first;
  }
  EXPECT_FALSE(bget_resp.results(items.size()).found());

  const std::string& first = items[0].first;
  prism::v1::ExistsRequest ex;
  ex.set_namespace_(ns + "-other");
  ex.set_key(first);
  prism::v1::ExistsResponse ex_resp;
  ASSERT_TRUE(stub.Exists(ctx().get(), ex, &ex_resp).ok());
  EXPECT_FALSE(ex_resp.exists());
  ex.set_namespace_(ns);
  ASSERT_TRUE(stub.Exists(ctx().get(), ex, &ex_resp).ok());
  EXPECT_TRUE(ex_resp.exists());

  const std::string upserted("new\0bytes", 9);
  ASSERT_TRUE(KvSet(stub, ns, first, upserted).ok());
  prism::v1::GetResponse get_resp;
  ASSERT_TRUE(KvGet(stub, ns, first, &get_resp).ok());
  EXPECT_TRUE(get_resp.found());
  EXPECT_EQ(get_resp.value(), upserted);

  prism::v1::DeleteRequest del;
  del.set_namespace_(ns);
  del.set_key(first);
  prism::v1::DeleteResponse del_resp;
  ASSERT_TRUE(stub.Delete(ctx().get(), del, &del_resp).ok());
  EXPECT_TRUE(del_resp.deleted());
  ASSERT_TRUE(stub.Delete(ctx().get(), del, &del_resp).ok());
  EXPECT_FALSE(del_resp.deleted());

  prism::v1::BatchDeleteRequest bdel;
  bdel.set_namespace_(ns);
  for (const auto& kv : items) bdel.add_keys(kv.first);
  bdel.add_keys("missing-key");
  prism::v1::BatchDeleteResponse bdel_resp;
  ASSERT_TRUE(stub.BatchDelete(ctx().get(), bdel, &bdel_resp).ok());
  EXPECT_EQ(bdel_resp.deleted(), static_cast<int64_t>(items.size()) - 1);
}

std::string AttrStr(const prism::tracing::SpanData& s, std::string_view key) {
  const auto* v = s.FindAttribute(key);
  return v && std::holds_alternative<std::string>(*v) ? std::get<std::string>(*v) : "<none>";
}

int64_t AttrInt(const prism::tracing::SpanData& s, std::string_view key) {
  const auto* v = s.FindAttribute(key);
  return v && std::holds_alternative<int64_t>(*v) ? std::get<int64_t>(*v) : -1;
}

}  // namespace prism::plugin::testing
