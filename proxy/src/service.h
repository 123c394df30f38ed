#pragma once
// The proxy's public KeyValue service: the 7 methods as raw (ByteBuffer)
// unary callbacks that authenticate, route by namespace and forward the
// bytes to the plugin; prism.v1.PubSub through the same steps
// (ProxyPubSubService); anything else gets UNIMPLEMENTED from a generic
// service.
//
// Thread safety: gRPC calls the methods of both services concurrently from
// its callback threads; every call has its own reactor. What the services
// share is read-only after construction (the Authorizer, the namespace
// table, the tracer) or atomic (each plugin's endpoint, which the
// Supervisor swaps as a plugin restarts; the trigger counters).
// Lifetime: ProxyService keeps references to the Authorizer and the
// Supervisor, and ProxyPubSubService one to the ProxyService; each must
// outlive the services and the grpc::Server they are registered with.
// ProxyServer (server.h) owns them all and destroys the server first.

#include <grpcpp/generic/async_generic_service.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <string>
#include <unordered_set>

#include "auth.h"
#include "plugins.h"
#include "prism/tracing/adaptive.h"
#include "prism/tracing/propagation.h"
#include "prism/tracing/tracer.h"
#include "prism/v1/kv.grpc.pb.h"
#include "prism/v1/pubsub.grpc.pb.h"

namespace prism::proxy {

inline constexpr const char* kServiceName = "prism.v1.KeyValue";

struct MethodInfo {
  const char* path;       // "/prism.v1.KeyValue/Get"
  const char* name;       // "Get"
  const char* span_name;  // "prism.v1.KeyValue/Get"
  const char* operation;  // "get"
  uint8_t right;          // kRead, kWrite, kPublish or kSubscribe
};

struct ServiceOptions {
  std::string listen_host;  // server.address of the SERVER span
  int listen_port = 0;
  // The deadline of a forwarded call whose caller set none (limits.default_deadline).
  std::chrono::milliseconds default_deadline{30000};
  // Adaptive sampling: a request at least this long keeps its trace, unless
  // its namespace sets its own threshold (namespaces.<ns>.slow).
  std::chrono::milliseconds slow_default{100};
};

namespace kv = prism::v1;
// Every KeyValue method as a raw callback: the proxy never decodes payloads.
using RawKeyValueService = kv::KeyValue::WithRawCallbackMethod_Get<
    kv::KeyValue::WithRawCallbackMethod_Set<kv::KeyValue::WithRawCallbackMethod_Delete<
        kv::KeyValue::WithRawCallbackMethod_Exists<kv::KeyValue::WithRawCallbackMethod_BatchGet<
            kv::KeyValue::WithRawCallbackMethod_BatchSet<
                kv::KeyValue::WithRawCallbackMethod_BatchDelete<kv::KeyValue::Service>>>>>>>;

class ProxyService final : public RawKeyValueService {
 public:
  ProxyService(const Authorizer& auth, const Supervisor& plugins, ServiceOptions options);

  // The method index is the order of the rpcs in kv.proto, then Publish (7)
  // and Subscribe (8) of pubsub.proto.
  using Reactor = grpc::ServerUnaryReactor;
  using Ctx = grpc::CallbackServerContext;
  using Bytes = grpc::ByteBuffer;
  Reactor* Get(Ctx* c, const Bytes* q, Bytes* r) override { return Forward(0, c, q, r); }
  Reactor* Set(Ctx* c, const Bytes* q, Bytes* r) override { return Forward(1, c, q, r); }
  Reactor* Delete(Ctx* c, const Bytes* q, Bytes* r) override { return Forward(2, c, q, r); }
  Reactor* Exists(Ctx* c, const Bytes* q, Bytes* r) override { return Forward(3, c, q, r); }
  Reactor* BatchGet(Ctx* c, const Bytes* q, Bytes* r) override { return Forward(4, c, q, r); }
  Reactor* BatchSet(Ctx* c, const Bytes* q, Bytes* r) override { return Forward(5, c, q, r); }
  Reactor* BatchDelete(Ctx* c, const Bytes* q, Bytes* r) override { return Forward(6, c, q, r); }

  const Authorizer& auth() const { return auth_; }
  const Supervisor& plugins() const { return plugins_; }
  const ServiceOptions& options() const { return options_; }
  // The port actually bound (known only after the server started).
  void set_listen_port(int port);
  int listen_port() const { return listen_port_.load(std::memory_order_relaxed); }
  // The attributes every SERVER span of method index `method` starts with
  // (rpc.*, server.address/port, prism.operation), one shared block per
  // method (prism::tracing::AttributeBlock), with the blocks it ends with
  // (its status); null until the port is known.
  const prism::grpc_tracing::RpcEndBlocks* server_attributes(size_t method) const {
    const auto* blocks = server_attributes_.load(std::memory_order_acquire);
    return blocks ? (*blocks)[method].get() : nullptr;
  }
  const prism::tracing::Tracer& tracer() const { return tracer_; }
  const prism::tracing::TextMapPropagator& propagator() const { return *propagator_; }

  // Adaptive sampling: tells the plugin behind `endpoint` to keep its spans
  // of `trace_id` (prism.v1.Sampling/Keep, asynchronous, best effort).
  void SendKeep(std::shared_ptr<const Endpoint> endpoint, const prism::tracing::TraceId& trace_id,
                prism::tracing::SamplingReason reason) const;
  // "adaptive sampling: <SDK counters> triggers_sent=N triggers_failed=N"
  std::string SamplingCounters() const;
  std::string TriggerCounters() const;

  // A unary call of method index `method`, forwarded.
  Reactor* Forward(size_t method, Ctx* ctx, const Bytes* request, Bytes* response) const;

 private:
  const Authorizer& auth_;
  const Supervisor& plugins_;
  ServiceOptions options_;
  std::atomic<int> listen_port_{0};
  // Published by set_listen_port; every set made is kept for calls that
  // still read an older one.
  using MethodBlocks = std::vector<std::unique_ptr<const prism::grpc_tracing::RpcEndBlocks>>;
  std::atomic<const MethodBlocks*> server_attributes_{nullptr};
  std::vector<std::unique_ptr<const MethodBlocks>> server_attributes_made_;
  prism::tracing::Tracer tracer_;
  std::shared_ptr<const prism::tracing::TextMapPropagator> propagator_;
  mutable std::atomic<uint64_t> triggers_sent_{0}, triggers_failed_{0}, triggers_skipped_{0},
      triggers_in_flight_{0};
};

// prism.v1.PubSub through the same auth, routing and spans: Publish as a
// forwarded unary call, Subscribe as a raw server stream (service.cc,
// SubscribeReactor).
class SubscribeReactor;
using RawPubSubService = prism::v1::PubSub::WithRawCallbackMethod_Publish<
    prism::v1::PubSub::WithRawCallbackMethod_Subscribe<prism::v1::PubSub::Service>>;
class ProxyPubSubService final : public RawPubSubService {
 public:
  explicit ProxyPubSubService(const ProxyService& kv) : kv_(kv) {}
  grpc::ServerUnaryReactor* Publish(grpc::CallbackServerContext* ctx,
                                    const grpc::ByteBuffer* request,
                                    grpc::ByteBuffer* response) override;
  grpc::ServerWriteReactor<grpc::ByteBuffer>* Subscribe(grpc::CallbackServerContext* ctx,
                                                        const grpc::ByteBuffer* request) override;
  // Ends every open subscription (the proxy is stopping: a drain would
  // otherwise wait for streams that never end by themselves).
  void CancelAll();
  size_t open_streams() const;

  void Register(SubscribeReactor* r);
  void Unregister(SubscribeReactor* r);

 private:
  const ProxyService& kv_;
  mutable std::recursive_mutex mu_;
  std::unordered_set<SubscribeReactor*> open_;
  bool stopping_ = false;
};

// Methods other than the ones above: UNIMPLEMENTED with a message that says so.
class UnknownMethodService final : public grpc::CallbackGenericService {
 public:
  grpc::ServerGenericBidiReactor* CreateReactor(grpc::GenericCallbackServerContext* ctx) override;
};

}  // namespace prism::proxy
