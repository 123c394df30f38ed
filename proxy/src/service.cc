#include "service.h"

#include <grpcpp/client_context.h>
#include <grpcpp/support/byte_buffer.h>

#include <atomic>
#include <chrono>

#include "prism/grpc_tracing/carriers.h"
#include "prism/grpc_tracing/semconv.h"
#include "prism/plugin/status.h"
#include "prism/tracing/context.h"
#include "prism/tracing/global.h"
#include "prism/tracing/ids.h"
#include "prism/tracing/version.h"
#include "prism/v1/sampling.pb.h"
#include "wire.h"

namespace prism::proxy {
namespace {

namespace pt = prism::tracing;
namespace gt = prism::grpc_tracing;

constexpr MethodInfo kMethods[] = {
    {"/prism.v1.KeyValue/Get", "Get", "prism.v1.KeyValue/Get", "get", kRead},
    {"/prism.v1.KeyValue/Set", "Set", "prism.v1.KeyValue/Set", "set", kWrite},
    {"/prism.v1.KeyValue/Delete", "Delete", "prism.v1.KeyValue/Delete", "delete", kWrite},
    {"/prism.v1.KeyValue/Exists", "Exists", "prism.v1.KeyValue/Exists", "exists", kRead},
    {"/prism.v1.KeyValue/BatchGet", "BatchGet", "prism.v1.KeyValue/BatchGet", "batch_get", kRead},
    {"/prism.v1.KeyValue/BatchSet", "BatchSet", "prism.v1.KeyValue/BatchSet", "batch_set", kWrite},
    {"/prism.v1.KeyValue/BatchDelete", "BatchDelete", "prism.v1.KeyValue/BatchDelete",
     "batch_delete", kWrite},
};

// The request shape of each method, in kMethods' order (wire.h).
constexpr RequestShape kShapes[] = {RequestShape::kKey, RequestShape::kSet,  RequestShape::kKey,
                                    RequestShape::kKey, RequestShape::kKeys, RequestShape::kItems,
                                    RequestShape::kKeys};
static_assert(std::size(kShapes) == std::size(kMethods));

std::optional<std::string_view> FindMetadata(
    const std::multimap<grpc::string_ref, grpc::string_ref>& md, std::string_view key) {
  auto it = md.find(grpc::string_ref(key.data(), key.size()));
  if (it == md.end()) return std::nullopt;
  return std::string_view(it->second.data(), it->second.size());
}

void RecordError(pt::Span& span, grpc::StatusCode code, const std::string& message) {
  if (!span.IsRecording()) return;
  std::string_view name = gt::StatusCodeName(code);
  span.RecordException(std::string("grpc.") + std::string(name), message);
  span.SetAttribute(gt::attr::kErrorType, name);
  span.SetStatus(pt::StatusCode::kError, message);
}

// One forwarded call. A unary reactor on the raw (ByteBuffer) KeyValue
// methods: the request arrives with the call, with no read to start and no
// reaction to wait for - cheaper than a generic bidi stream.
class ForwardReactor final : public grpc::ServerUnaryReactor {
 public:
  ForwardReactor(const ProxyService& svc, grpc::CallbackServerContext* ctx,
                 const MethodInfo* method, const grpc::ByteBuffer* request,
                 grpc::ByteBuffer* response)
      : svc_(svc), ctx_(ctx), method_(method), request_(*request), response_(*response) {
    Begin();
    Handle();
  }

  void OnCancel() override {
    if (forwarding_.load(std::memory_order_acquire)) client_ctx_->TryCancel();
  }

  void OnDone() override {
    if (Deferred()) Decide();
    server_span_.End();
    delete this;
  }

  // Not gRPC API (grpc++ 1.51 ServerReactor): lets gRPC run OnDone on the
  // thread that completed the call instead of handing it to its executor
  // thread - one wake-up and context switch fewer per call. OnDone only ends
  // a span (a non-blocking queue push) and frees memory.
  bool InternalInlineable() override { return true; }

 private:
  // Extracts the caller's context, starts the SERVER span, sets the response
  // metadata (request id, trace id).
  void Begin() {
    const auto& md = ctx_->client_metadata();
    gt::ServerMetadataCarrier carrier(md);
    parent_ = svc_.propagator().Extract(carrier, pt::Context());

    if (auto rid = FindMetadata(md, "x-request-id"); rid && ValidRequestId(*rid)) {
      request_id_ = std::string(*rid);
    } else {
      request_id_ = pt::GenerateTraceId().ToHex();
    }

    pt::StartSpanOptions opts;
    opts.kind = pt::SpanKind::kServer;
    opts.parent = parent_.span_context();
    opts.root = !parent_.span_context().IsValid();
    server_span_ = svc_.tracer().StartSpan(method_->span_name, std::move(opts),
                                           [this] { return ServerAttributes(); });
    // Adaptive sampling left this trace undecided: it is decided when the
    // request ends (OnDone), on its errors and its latency.
    if (server_span_.IsRecording() && !server_span_.context().IsSampled() &&
        svc_.tracer().adaptive()) {
      deferred_start_ = std::chrono::steady_clock::now();
    }
    ctx_->AddInitialMetadata("x-request-id", request_id_);
    // x-trace-id names a trace someone can look up: only a sampled one. An
    // unsampled request (the 99 % at 1 % sampling, or tracing disabled with
    // no caller's trace) has none anywhere; x-request-id still identifies it.
    if (const pt::SpanContext& sc = server_span_.context(); sc.IsValid() && sc.IsSampled()) {
      trace_id_ = sc.trace_id().ToHex();
      ctx_->AddInitialMetadata("x-trace-id", trace_id_);
    }
  }

  pt::Attributes ServerAttributes() const {
    pt::Attributes a = gt::RpcStartAttributes(gt::SplitMethod(method_->path),
                                              {svc_.options().listen_host, svc_.listen_port()});
    gt::Endpoint peer = gt::ParsePeer(ctx_->peer());
    if (!peer.address.empty()) pt::AppendString(a, gt::attr::kNetworkPeerAddress, peer.address);
    if (peer.port) pt::AppendInt(a, gt::attr::kNetworkPeerPort, peer.port);
    pt::AppendString(a, "prism.request_id", request_id_);
    pt::AppendString(a, "prism.operation", method_->operation);
    return a;
  }

  pt::Attributes ClientAttributes() const {
    pt::Attributes a = gt::RpcStartAttributes(gt::SplitMethod(method_->path), endpoint_->server);
    pt::AppendString(a, "prism.plugin", *plugin_name_);
    return a;
  }

  void Handle() {
    // 1. The namespace, read from field 1 of the raw request, which is
    // checked whole first: bytes protobuf would refuse are INVALID_ARGUMENT
    // here, and an oversized namespace is refused before it is recorded.
    auto ns = ReadRequest(request_, kShapes[method_ - kMethods]);
    if (!ns.ok()) {
      FinishWith(prism::plugin::ToGrpcStatus(ns.status()), true);
      return;
    }
    ns_ = std::move(*ns);
    server_span_.SetAttribute("prism.namespace", ns_);
    if (ns_.empty()) {
      FinishWith(grpc::Status(grpc::INVALID_ARGUMENT,
                              "the request names no namespace (field 1 'namespace' is empty)"),
                 true);
      return;
    }

    // 2. Authentication and authorization.
    {
      pt::StartSpanOptions o;
      o.parent = server_span_.context();
      pt::Span auth = svc_.tracer().StartSpan("prism.auth.verify", std::move(o));
      const auto& md = ctx_->client_metadata();
      auto who = svc_.auth().Authenticate(FindMetadata(md, "authorization"));
      absl::Status st = who.ok() ? svc_.auth().Authorize(*who, ns_, method_->right) : who.status();
      if (auth.IsRecording()) {
        auth.SetAttribute("prism.namespace", ns_);
        auth.SetAttribute("prism.access", method_->right == kRead ? "read" : "write");
        if (who.ok()) auth.SetAttribute("prism.principal", std::string(who->name));
      }
      if (!st.ok()) {
        grpc::Status gs = prism::plugin::ToGrpcStatus(st);
        RecordError(auth, gs.error_code(), gs.error_message());
        auth.End();
        FinishWith(gs, true);
        return;
      }
    }

    // 3. Routing: namespace -> plugin.
    {
      pt::StartSpanOptions o;
      o.parent = server_span_.context();
      pt::Span route = svc_.tracer().StartSpan("prism.routing.select_plugin", std::move(o));
      route.SetAttribute("prism.namespace", ns_);
      PluginBackend* backend = svc_.plugins().Find(ns_);
      if (!backend) {
        grpc::Status gs(grpc::NOT_FOUND, "unknown namespace '" + ns_ + "'");
        RecordError(route, gs.error_code(), gs.error_message());
        route.End();
        FinishWith(gs, true);
        return;
      }
      plugin_name_ = &backend->plugin_name();
      backend_ = backend;
      route.SetAttribute("prism.plugin", backend->plugin_name());
      endpoint_ = backend->endpoint();
      if (!endpoint_) {
        grpc::Status gs(grpc::UNAVAILABLE, "plugin " + backend->plugin_name() + " for namespace '" +
                                               ns_ + "' is down (" + backend->down_reason() + ")");
        RecordError(route, gs.error_code(), gs.error_message());
        route.End();
        FinishWith(gs, true);
        return;
      }
    }

    // 4. Forward the raw bytes; the CLIENT span's context travels in the
    // metadata. x-request-id does not: plugins have no use for it (the
    // request is found by its trace), and gRPC sends every extra header as
    // an unindexed literal, costing both processes on every call.
    // The caller's deadline travels to the plugin; a cancelled caller cancels
    // the forwarded call (OnCancel). Cheaper than FromCallbackServerContext,
    // which also links census contexts.
    client_ctx_ = std::make_unique<grpc::ClientContext>();
    auto deadline = ctx_->deadline();
    if (deadline == std::chrono::system_clock::time_point::max()) {
      // No deadline from the caller: a stalled plugin must not hold the
      // call, and what it pins, forever.
      default_deadline_ = true;
      deadline = std::chrono::system_clock::now() + svc_.options().default_deadline;
    }
    client_ctx_->set_deadline(deadline);
    forwarding_.store(true, std::memory_order_release);
    pt::StartSpanOptions o;
    o.kind = pt::SpanKind::kClient;
    o.parent = server_span_.context();
    client_span_ = svc_.tracer().StartSpan(method_->span_name, std::move(o),
                                           [this] { return ClientAttributes(); });
    {
      gt::ClientContextCarrier out(*client_ctx_);
      svc_.propagator().Inject(parent_.WithSpanContext(client_span_.context()), out);
    }
    endpoint_->stub->UnaryCall(client_ctx_.get(), method_->path, grpc::StubOptions(), &request_,
                               &response_, [this](grpc::Status s) { OnPluginDone(std::move(s)); });
  }

  void OnPluginDone(grpc::Status s) {
    if (Deferred()) {
      // The plugin kept the trace on its own (an error it saw): it says so
      // in its trailers, and needs no trigger.
      const auto& trailers = client_ctx_->GetServerTrailingMetadata();
      auto it = trailers.find(gt::kTraceResponseKey);
      plugin_kept_ = it != trailers.end() &&
                     gt::TraceResponseKept(std::string_view(it->second.data(), it->second.size()),
                                           server_span_.context().trace_id());
    }
    gt::SetRpcStatus(client_span_, s, /*server_side=*/false);
    if (!s.ok()) RecordError(client_span_, s.error_code(), s.error_message());
    client_span_.End();
    if (s.ok()) {
      FinishWith(s, false);
      return;
    }
    if (s.error_code() == grpc::DEADLINE_EXCEEDED && default_deadline_) {
      s = grpc::Status(grpc::DEADLINE_EXCEEDED,
                       "the call set no deadline and the proxy's default of " +
                           std::to_string(svc_.options().default_deadline.count()) +
                           " ms (limits.default_deadline) passed");
    } else if (s.error_code() == grpc::UNAVAILABLE) {
      s = grpc::Status(grpc::UNAVAILABLE, "plugin " + *plugin_name_ + " for namespace '" + ns_ +
                                              "' is unavailable: " + s.error_message());
    }
    FinishWith(s, false);
  }

  // `proxy_decided`: the proxy itself refused the call (auth, routing, bad
  // input) - recorded as an error on the SERVER span with an exception event.
  void FinishWith(const grpc::Status& s, bool proxy_decided) {
    gt::SetRpcStatus(server_span_, s, /*server_side=*/true);
    if (!s.ok() && (proxy_decided || gt::IsServerError(s.error_code()))) {
      RecordError(server_span_, s.error_code(), s.error_message());
    }
    bool kept_late = false;
    if (Deferred()) {
      // Known now for errors, and for requests already past their latency
      // threshold: the trace will be kept, so the caller gets its id.
      error_ = !s.ok() || plugin_kept_;
      if (error_ || std::chrono::steady_clock::now() - deferred_start_ >= SlowThreshold()) {
        trace_id_ = server_span_.context().trace_id().ToHex();
        kept_late = true;
      }
    }
    if (!s.ok()) {
      // Errors may travel as trailers-only: repeat the ids in the trailers.
      ctx_->AddTrailingMetadata("x-request-id", request_id_);
      if (!trace_id_.empty()) ctx_->AddTrailingMetadata("x-trace-id", trace_id_);
    } else if (kept_late) {
      ctx_->AddTrailingMetadata("x-trace-id", trace_id_);
    }
    Finish(s);  // OK sends *response (the plugin's bytes), errors send none
  }

  bool Deferred() const { return deferred_start_ != std::chrono::steady_clock::time_point(); }

  std::chrono::milliseconds SlowThreshold() const {
    if (backend_) {
      if (auto slow = backend_->slow()) return *slow;
    }
    return svc_.options().slow_default;
  }

  // The end of an undecided trace: kept for an error anywhere or for its
  // latency; the plugin that served it is told unless it kept it already.
  // Otherwise the SDK drops it whole when the SERVER span ends.
  void Decide() {
    pt::SamplingReason reason = pt::SamplingReason::kNone;
    if (error_) {
      reason = pt::SamplingReason::kError;
    } else if (SlowThreshold().count() > 0 &&
               std::chrono::steady_clock::now() - deferred_start_ >= SlowThreshold()) {
      reason = pt::SamplingReason::kSlow;
    }
    if (reason == pt::SamplingReason::kNone) return;
    const pt::TraceId& id = server_span_.context().trace_id();
    svc_.tracer().adaptive()->Keep(id, reason);
    if (client_ctx_ && endpoint_ && !plugin_kept_) svc_.SendKeep(endpoint_, id, reason);
  }

  const ProxyService& svc_;
  grpc::CallbackServerContext* ctx_;
  const MethodInfo* method_;
  const grpc::ByteBuffer& request_;  // owned by gRPC until OnDone
  grpc::ByteBuffer& response_;
  pt::Context parent_;
  pt::Span server_span_, client_span_;
  std::string request_id_, trace_id_, ns_;
  const std::string* plugin_name_ = nullptr;
  std::shared_ptr<const Endpoint> endpoint_;
  std::unique_ptr<grpc::ClientContext> client_ctx_;
  std::atomic<bool> forwarding_{false};
  bool default_deadline_ = false;  // the caller set none: the proxy's default applies
  const PluginBackend* backend_ = nullptr;
  // Adaptive sampling: set when the trace is undecided (deferred).
  std::chrono::steady_clock::time_point deferred_start_;
  bool plugin_kept_ = false;
  bool error_ = false;
};

// Anything but the KeyValue methods.
class UnimplementedReactor final : public grpc::ServerGenericBidiReactor {
 public:
  explicit UnimplementedReactor(const std::string& method) {
    Finish(grpc::Status(grpc::UNIMPLEMENTED,
                        "prism-proxy serves prism.v1.KeyValue only; unknown method '" +
                            method.substr(0, 200) + "'"));
  }
  void OnDone() override { delete this; }
};

}  // namespace

ProxyService::ProxyService(const Authorizer& auth, const Supervisor& plugins,
                           ServiceOptions options)
    : auth_(auth),
      plugins_(plugins),
      options_(std::move(options)),
      listen_port_(options_.listen_port),
      tracer_(pt::GetTracer("prism-proxy", std::string(pt::kSdkVersion))),
      propagator_(pt::GlobalPropagator()) {}

grpc::ServerUnaryReactor* ProxyService::Forward(size_t method, grpc::CallbackServerContext* ctx,
                                                const grpc::ByteBuffer* request,
                                                grpc::ByteBuffer* response) {
  return new ForwardReactor(*this, ctx, &kMethods[method], request, response);
}

void ProxyService::SendKeep(std::shared_ptr<const Endpoint> endpoint, const pt::TraceId& trace_id,
                            pt::SamplingReason reason) const {
  struct Call {
    std::shared_ptr<const Endpoint> endpoint;
    grpc::ClientContext ctx;
    grpc::ByteBuffer request, response;
  };
  // A stalled plugin fails every call at its deadline, and each of those is
  // kept and triggers it: at most kMaxTriggersInFlight wait at once (each
  // for at most its 1 s deadline); past that the trigger is skipped and
  // counted, and the trace is kept without the plugin's spans.
  constexpr uint64_t kMaxTriggersInFlight = 256;
  if (triggers_in_flight_.fetch_add(1, std::memory_order_relaxed) >= kMaxTriggersInFlight) {
    triggers_in_flight_.fetch_sub(1, std::memory_order_relaxed);
    triggers_skipped_.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  prism::v1::KeepRequest req;
  prism::v1::KeptTrace* t = req.add_traces();
  t->set_trace_id(trace_id.bytes().data(), trace_id.bytes().size());
  t->set_reason(std::string(pt::ToString(reason)));
  std::string bytes = req.SerializeAsString();
  grpc::Slice slice(bytes);
  auto* call = new Call{std::move(endpoint), {}, grpc::ByteBuffer(&slice, 1), {}};
  // The plugin's spans of a finished request are already buffered; a second
  // is plenty, and a plugin that is down must not hold the call longer.
  call->ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(1));
  triggers_sent_.fetch_add(1, std::memory_order_relaxed);
  call->endpoint->stub->UnaryCall(&call->ctx, "/prism.v1.Sampling/Keep", grpc::StubOptions(),
                                  &call->request, &call->response, [this, call](grpc::Status s) {
                                    if (!s.ok()) {
                                      triggers_failed_.fetch_add(1, std::memory_order_relaxed);
                                    }
                                    delete call;
                                    triggers_in_flight_.fetch_sub(1, std::memory_order_relaxed);
                                  });
}

std::string ProxyService::TriggerCounters() const {
  return "sampling triggers to plugins: sent=" +
         std::to_string(triggers_sent_.load(std::memory_order_relaxed)) +
         " failed=" + std::to_string(triggers_failed_.load(std::memory_order_relaxed)) +
         " skipped=" + std::to_string(triggers_skipped_.load(std::memory_order_relaxed));
}

std::string ProxyService::SamplingCounters() const {
  pt::AdaptiveSampling* adaptive = tracer_.adaptive();
  if (!adaptive) return "adaptive sampling is off (tracing.sampler)";
  return "adaptive sampling: " + adaptive->Counters().ToString() + "; " + TriggerCounters();
}

grpc::ServerGenericBidiReactor* UnknownMethodService::CreateReactor(
    grpc::GenericCallbackServerContext* ctx) {
  return new UnimplementedReactor(ctx->method());
}

}  // namespace prism::proxy
