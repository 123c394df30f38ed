#pragma once
// A KeyValue service in the test's own process behind a real Unix socket,
// traced by the grpc_tracing server interceptor, with a stub whose client
// interceptor traces too; every span goes to one in-memory recorder, so a
// test can check exact span trees (client -> server -> pool -> statement).
//
//   pt::TracedKvServer kv;
//   MyOptions o; o.tracer = kv.Tracer("prism.plugin.mydb");
//   auto service = MyService::Open(o);
//   ASSERT_TRUE(kv.Start(service.get(), dir));
//   kv.stub->Get(&ctx, req, &resp);  auto spans = kv.WaitSpans(4);

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "prism/tracing/in_memory_recorder.h"
#include "prism/tracing/tracer.h"
#include "prism/v1/kv.grpc.pb.h"

namespace prism::plugin::testing {

class TracedKvServer {
 public:
  // Installs the sync handler scopes (before the process's first server).
  TracedKvServer();
  ~TracedKvServer() { Stop(); }
  TracedKvServer(const TracedKvServer&) = delete;
  TracedKvServer& operator=(const TracedKvServer&) = delete;

  // A tracer recording into `recorder` (for the service under test).
  prism::tracing::Tracer Tracer(const std::string& scope) const;
  // Serves `service` on unix://<dir>/<socket> and connects `stub` to it.
  bool Start(grpc::Service* service, const std::string& dir, const std::string& socket = "s.sock");
  // Shuts the server down; the recorder keeps its spans. Idempotent.
  void Stop();
  // Waits up to 2 s for `n` spans; returns what was recorded.
  std::vector<prism::tracing::SpanData> WaitSpans(size_t n);

  prism::tracing::InMemorySpanRecorder recorder;
  std::shared_ptr<prism::tracing::TracerProvider> provider;
  prism::tracing::Tracer client_tracer;  // scope "test": the stub's CLIENT spans, test roots
  std::string socket_path;               // <dir>/<socket> of the last Start
  std::unique_ptr<grpc::Server> server;
  std::unique_ptr<prism::v1::KeyValue::Stub> stub;
};

// One call each, with a deadline `timeout` from now and `metadata` sent.
grpc::Status KvSet(prism::v1::KeyValue::Stub& stub, const std::string& ns, const std::string& key,
                   const std::string& value,
                   std::chrono::milliseconds timeout = std::chrono::seconds(5),
                   const std::map<std::string, std::string>& metadata = {});
grpc::Status KvGet(prism::v1::KeyValue::Stub& stub, const std::string& ns, const std::string& key,
                   prism::v1::GetResponse* resp,
                   std::chrono::milliseconds timeout = std::chrono::seconds(5));

// The behaviour every KeyValue plugin shares, through `stub` (gtest
// expectations): BatchSet `items` (keys distinct; values byte-exact, an empty
// value is a value) into `ns`; BatchGet them plus a missing key; Exists in
// another namespace (separate key spaces) and in `ns`; Set as an upsert of
// the first key (bytes with a NUL), Get it; Delete it twice (deleted, then
// not); BatchDelete all keys plus a missing one (items.size() - 1 deleted).
void ExpectKeyValueMethods(prism::v1::KeyValue::Stub& stub, const std::string& ns,
                           const std::vector<std::pair<std::string, std::string>>& items);

// A recorded span's attribute: the string ("<none>" when absent or not a
// string), the integer (-1 when absent or not an integer).
std::string AttrStr(const prism::tracing::SpanData& s, std::string_view key);
int64_t AttrInt(const prism::tracing::SpanData& s, std::string_view key);

}  // namespace prism::plugin::testing
