// prism-plugin-memstore as a child process over TCP: every KeyValue method,
// validation, the health service, and its SERVER spans in the trace file as
// children of the caller's CLIENT spans.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <signal.h>

#include <regex>
#include <thread>

#include "prism/grpc_tracing/client.h"
#include "prism/tracing/in_memory_recorder.h"
#include "prism/v1/kv.grpc.pb.h"
#include "testing.h"

namespace {

using namespace std::chrono_literals;
namespace pt = prism::plugin::testing;

// The "serving on 127.0.0.1:PORT" line of a plugin started with port 0.
std::string WaitForListenLine(const std::string& stderr_path) {
  std::regex re("serving on (127\\.0\\.0\\.1:[0-9]+)");
  for (int i = 0; i < 500; ++i) {
    std::smatch m;
    std::string err = pt::ReadFile(stderr_path);
    if (std::regex_search(err, m, re)) return m[1];
    std::this_thread::sleep_for(10ms);
  }
  return "";
}

TEST(Memstore, AllMethodsOverTcpWithTrace) {
  std::string dir = pt::MakeTempDir("prism-memstore-");
  std::string trace_file = dir + "/traces.jsonl";
  pt::ChildProcess p(PRISM_MEMSTORE_PLUGIN, {"--listen", "127.0.0.1:0", "--shards", "8"},
                     {"OTEL_TRACES_EXPORTER=file", "PRISM_TRACE_FILE=" + trace_file,
                      "OTEL_TRACES_SAMPLER=parentbased_always_on", "OTEL_SERVICE_NAME="},
                     dir + "/stderr");
  std::string target = WaitForListenLine(dir + "/stderr");
  ASSERT_FALSE(target.empty()) << pt::ReadFile(dir + "/stderr");
  ASSERT_TRUE(pt::WaitServing(target, 20s)) << pt::ReadFile(dir + "/stderr");

  prism::tracing::InMemorySpanRecorder recorder;
  prism::tracing::TracerProviderOptions po;
  po.processors.push_back(recorder.MakeProcessor());
  prism::tracing::TracerProvider provider(std::move(po));
  std::vector<std::unique_ptr<grpc::experimental::ClientInterceptorFactoryInterface>> f;
  prism::grpc_tracing::ClientTracingOptions co;
  co.target = target;
  co.tracer = provider.GetTracer("test");
  f.push_back(prism::grpc_tracing::MakeClientInterceptorFactory(co));
  auto stub = prism::v1::KeyValue::NewStub(grpc::experimental::CreateCustomChannelWithInterceptors(
      target, grpc::InsecureChannelCredentials(), grpc::ChannelArguments(), std::move(f)));

  auto call = [&](auto method, const auto& req, auto* resp) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + 5s);
    return ((*stub).*method)(&ctx, req, resp);
  };
  using S = prism::v1::KeyValue::Stub;
  prism::v1::SetRequest set;
  set.set_namespace_("ns");
  set.set_key("a");
  set.set_value(std::string("v\0a", 3));
  prism::v1::SetResponse set_resp;
  ASSERT_TRUE(call(&S::Set, set, &set_resp).ok());

  prism::v1::GetRequest get;
  get.set_namespace_("ns");
  get.set_key("a");
  prism::v1::GetResponse get_resp;
  ASSERT_TRUE(call(&S::Get, get, &get_resp).ok());
  EXPECT_TRUE(get_resp.found());
  EXPECT_EQ(get_resp.value(), std::string("v\0a", 3));
  get.set_namespace_("other");  // namespaces are separate
  ASSERT_TRUE(call(&S::Get, get, &get_resp).ok());
  EXPECT_FALSE(get_resp.found());

  prism::v1::BatchSetRequest bset;
  bset.set_namespace_("ns");
  for (std::string k : {"b", "c"}) {
    auto* it = bset.add_items();
    it->set_key(k);
    it->set_value("val-" + k);
  }
  prism::v1::BatchSetResponse bset_resp;
  ASSERT_TRUE(call(&S::BatchSet, bset, &bset_resp).ok());

  prism::v1::BatchGetRequest bget;
  bget.set_namespace_("ns");
  for (std::string k : {"a", "b", "zz", "c"}) bget.add_keys(k);
  prism::v1::BatchGetResponse bget_resp;
  ASSERT_TRUE(call(&S::BatchGet, bget, &bget_resp).ok());
  ASSERT_EQ(bget_resp.results_size(), 4);
  EXPECT_TRUE(bget_resp.results(1).found());
  EXPECT_EQ(bget_resp.results(1).value(), "val-b");
  EXPECT_FALSE(bget_resp.results(2).found());

  prism::v1::ExistsRequest ex;
  ex.set_namespace_("ns");
  ex.set_key("c");
  prism::v1::ExistsResponse ex_resp;
  ASSERT_TRUE(call(&S::Exists, ex, &ex_resp).ok());
  EXPECT_TRUE(ex_resp.exists());

  prism::v1::DeleteRequest del;
  del.set_namespace_("ns");
  del.set_key("c");
  prism::v1::DeleteResponse del_resp;
  ASSERT_TRUE(call(&S::Delete, del, &del_resp).ok());
  EXPECT_TRUE(del_resp.deleted());
  ASSERT_TRUE(call(&S::Delete, del, &del_resp).ok());
  EXPECT_FALSE(del_resp.deleted());

  prism::v1::BatchDeleteRequest bdel;
  bdel.set_namespace_("ns");
  for (std::string k : {"a", "b", "c"}) bdel.add_keys(k);
  prism::v1::BatchDeleteResponse bdel_resp;
  ASSERT_TRUE(call(&S::BatchDelete, bdel, &bdel_resp).ok());
  EXPECT_EQ(bdel_resp.deleted(), 2);

  // Bad input: a clear INVALID_ARGUMENT, and the plugin keeps serving.
  get.set_key("");
  grpc::Status st = call(&S::Get, get, &get_resp);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(st.error_message(), "key must not be empty");
  set.set_value(std::string(4 * 1024 * 1024 + 1, 'x'));
  st = call(&S::Set, set, &set_resp);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(st.error_message(), "value is 4194305 bytes; the limit is 4194304");

  p.Signal(SIGTERM);
  ASSERT_EQ(p.Wait(20s), 0) << pt::ReadFile(dir + "/stderr");
  auto spans = pt::ReadTraceFile(trace_file);
  auto client_spans = recorder.spans();
  ASSERT_EQ(client_spans.size(), 11u);
  int matched = 0;
  for (const auto& c : client_spans) {
    for (const auto& s : spans) {
      if (s.trace_id == c.context.trace_id().ToHex() &&
          s.parent_span_id == c.context.span_id().ToHex()) {
        matched++;
        EXPECT_EQ(s.kind, 2);
        EXPECT_EQ(s.name, c.name);
        EXPECT_EQ(s.service_name, "prism-plugin-memstore");
        EXPECT_EQ(s.attrs.at("server.address"), "127.0.0.1");
        EXPECT_EQ(s.attrs.at("rpc.service"), "prism.v1.KeyValue");
      }
    }
  }
  EXPECT_EQ(matched, 11);
  // Health checks are not traced.
  for (const auto& s : spans) EXPECT_EQ(s.name.find("grpc.health"), std::string::npos);
}

}  // namespace
