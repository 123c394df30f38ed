#include "service.h"

#include <grpcpp/client_context.h>
#include <grpcpp/support/byte_buffer.h>

#include <array>
#include <atomic>
#include <chrono>
#include <map>
#include <mutex>
#include <optional>
#include <vector>

#include "prism/grpc_tracing/carriers.h"
#include "prism/grpc_tracing/semconv.h"
#include "prism/plugin/status.h"
#include "prism/tracing/carriers.h"
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
    {"/prism.v1.PubSub/Publish", "Publish", "prism.v1.PubSub/Publish", "publish", kPublish},
    {"/prism.v1.PubSub/Subscribe", "Subscribe", "prism.v1.PubSub/Subscribe", "subscribe",
     kSubscribe},
};
constexpr size_t kPublishMethod = 7, kSubscribeMethod = 8;

// The request shape of each method, in kMethods' order (wire.h).
constexpr RequestShape kShapes[] = {
    RequestShape::kKey,  RequestShape::kSet,     RequestShape::kKey,
    RequestShape::kKey,  RequestShape::kKeys,    RequestShape::kItems,
    RequestShape::kKeys, RequestShape::kPublish, RequestShape::kSubscribe};
static_assert(std::size(kShapes) == std::size(kMethods));

std::optional<std::string_view> FindMetadata(
    const std::multimap<grpc::string_ref, grpc::string_ref>& md, std::string_view key) {
  auto it = md.find(grpc::string_ref(key.data(), key.size()));
  if (it == md.end()) return std::nullopt;
  return std::string_view(it->second.data(), it->second.size());
}

// What every SERVER span of method `m` starts with (ProxyService's shared
// blocks; a call's own list while the port is not known yet).
pt::Attributes ServerBlockAttributes(const MethodInfo& m, const std::string& host, int port) {
  pt::Attributes a = gt::RpcStartAttributes(gt::SplitMethod(m.path), {host, port});
  pt::AppendString(a, "prism.operation", m.operation);
  return a;
}

// The SERVER span's blocks for calls of method `index` from `peer`: the
// method's start block (`method`) extended by the caller's network.peer.*
// attributes, and its end blocks - so those two attributes are neither
// copied into each span nor encoded each time (~400 instructions a proxied
// call; callgrind, tenth pass in docs/benchmarks.md). A connection's calls
// come from one caller: each thread keeps the caller of its last call and
// makes blocks (per method, when first needed) from the second call in a
// row from it. Callers taking turns on a thread, or a connection per call,
// pay a compare and keep the two attributes as their own. Null: no blocks
// (yet) for this caller.
std::shared_ptr<const gt::RpcEndBlocks> PeerBlocks(size_t index, const gt::RpcEndBlocks& method,
                                                   const gt::Endpoint& peer) {
  struct Slot {
    pt::SharedAttributes method_start;  // held, so its address names one block
    std::shared_ptr<const gt::RpcEndBlocks> blocks;
  };
  struct Last {
    gt::Endpoint peer;
    bool valid = false;
    std::array<Slot, std::size(kMethods)> slots;
  };
  thread_local Last last;
  if (!last.valid || last.peer.port != peer.port || last.peer.address != peer.address) {
    last.peer = peer;
    last.valid = true;
    last.slots = {};
    return nullptr;
  }
  Slot& slot = last.slots[index];
  if (slot.method_start != method.start()) {
    pt::Attributes a;
    gt::ForEachPeerAttribute(
        peer, [&](const auto& key, auto value) { a.emplace_back(key, pt::Value(value)); });
    slot.method_start = method.start();
    slot.blocks = std::make_shared<const gt::RpcEndBlocks>(
        pt::AttributeBlock::Extend(method.start(), std::move(a)), /*server_side=*/true,
        method.conventions());
  }
  return slot.blocks;
}

// `at`: when the error happened (a replayed span's), 0 for now.
void RecordError(pt::Span& span, grpc::StatusCode code, const std::string& message,
                 uint64_t at = 0) {
  if (!span.IsRecording()) return;
  std::string_view name = gt::StatusCodeName(code);
  const std::string type = std::string("grpc.") + std::string(name);
  span.RecordException(at ? at : pt::NowUnixNano(), type, message);
  span.SetAttribute(gt::attr::kErrorType, name);
  span.SetStatus(pt::StatusCode::kError, message);
}

// What every proxied call does before it reaches the plugin, unary or
// streaming: the SERVER span and response ids (Begin), then the namespace
// check, authentication, authorization and routing (Admit), then the CLIENT
// span whose context travels to the plugin (StartClientSpan).
//
// Deferred recording (`defer_recording`, unary calls): when adaptive
// sampling leaves the trace undecided, the four spans record nothing while
// the call runs - only their times and outcomes are noted (SpanRun) - and
// are recorded at the end (Replay) if the trace is kept; a dropped call, 99
// in 100, pays for no span records (docs/sampling.md, "Deferred recording").
// Every span says what it says through one Describe* function, used live
// and in the replay alike.
class ProxiedCall {
 protected:
  ProxiedCall(const ProxyService& svc, grpc::CallbackServerContext* ctx, const MethodInfo* method,
              bool defer_recording = false)
      : svc_(svc), ctx_(ctx), method_(method), defer_recording_(defer_recording) {}

  // One span's run while its recording is deferred: what its replay needs.
  struct SpanRun {
    uint64_t start = 0, end = 0;  // pt::NowUnixNano(); start 0: it did not run
    grpc::Status status;          // the error it recorded (OK: none)
  };

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
    opts.defer = defer_recording_;
    server_end_ = svc_.server_attributes(method_ - kMethods);
    server_span_ = StartServerSpan(std::move(opts));
    lazy_ = server_span_.deferred();
    if (lazy_) {
      server_run_.start = pt::NowUnixNano();
      // A cancelled call's peer reads "unknown" by the time of a replay.
      peer_ = gt::ParsePeer(ctx_->peer());
    }
    // Adaptive sampling left this trace undecided: it is decided when the
    // request ends (OnDone), on its errors and its latency.
    if (lazy_ || (server_span_.IsRecording() && !server_span_.context().IsSampled() &&
                  svc_.tracer().adaptive())) {
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

  // Starts the SERVER span, live (Begin) or replayed, with its attributes:
  // those of every call of the method, shared (server_end_->start()), then
  // this call's (ServerAttributes). Before the port is known there is no
  // block, and ServerAttributes gives them all. A caller with blocks of its
  // own (PeerBlocks) has its block replace the method's, and its end blocks
  // end the span.
  pt::Span StartServerSpan(pt::StartSpanOptions&& opts) {
    if (server_end_) opts.shared_attributes = server_end_->start();
    pt::Span span = svc_.tracer().StartSpan(method_->span_name, std::move(opts),
                                            [this] { return ServerAttributes(); });
    if (peer_end_ && span.IsRecording()) {
      span.SetAttributes(peer_end_->start());
      server_end_ = peer_end_.get();
    }
    return span;
  }

  // The SERVER span's own attributes; run once, when the span records.
  pt::Attributes ServerAttributes() {
    pt::Attributes a;
    // The span takes this list and adds the namespace and status to it:
    // room for them at once, not 1-2-4-8 (four allocations a call).
    a.reserve(8);
    if (!server_end_) {
      a = ServerBlockAttributes(*method_, svc_.options().listen_host, svc_.listen_port());
    }
    const gt::Endpoint peer = lazy_ ? peer_ : gt::ParsePeer(ctx_->peer());
    if (server_end_) peer_end_ = PeerBlocks(method_ - kMethods, *server_end_, peer);
    if (!peer_end_) {
      gt::ForEachPeerAttribute(
          peer, [&](const auto& key, auto value) { a.emplace_back(key, pt::Value(value)); });
    }
    pt::AppendString(a, "prism.request_id", request_id_);
    return a;
  }

  // The CLIENT span's attributes, the same for every call of the method to
  // one plugin endpoint: a block per method and its end blocks, made once
  // per endpoint.
  const gt::RpcEndBlocks& ClientBlocks() const {
    const Endpoint& e = *endpoint_;
    std::call_once(e.client_attributes_once, [&] {
      e.client_attributes.reserve(std::size(kMethods));
      for (const MethodInfo& m : kMethods) {
        pt::Attributes a = gt::RpcStartAttributes(gt::SplitMethod(m.path), e.server);
        pt::AppendString(a, "prism.plugin", *plugin_name_);
        e.client_attributes.push_back(std::make_unique<const gt::RpcEndBlocks>(
            pt::AttributeBlock::Make(std::move(a)), /*server_side=*/false));
      }
    });
    return *e.client_attributes[method_ - kMethods];
  }

  void DescribeAuth(pt::Span& span) const {
    if (!span.IsRecording()) return;
    // A configured namespace's block for this right and principal; an
    // unknown namespace (the client's words) gets no block of its own.
    if (const PluginBackend* backend = svc_.plugins().Find(ns_)) {
      if (const auto* block =
              backend->auth_attributes(method_->right, principal_index_, principal_)) {
        span.SetAttributes(*block);
        return;
      }
    }
    span.SetAttribute("prism.namespace", ns_);
    span.SetAttribute("prism.access", RightsName(method_->right));
    if (principal_) span.SetAttribute("prism.principal", *principal_);
  }

  void DescribeRoute(pt::Span& span) const {
    if (!span.IsRecording()) return;
    if (backend_) {
      span.SetAttributes(backend_->route_attributes());  // prism.namespace, prism.plugin
    } else {
      span.SetAttribute("prism.namespace", ns_);
    }
  }

  // The CLIENT span's outcome; `at` as for RecordError.
  void DescribeClientEnd(pt::Span& span, const grpc::Status& s, bool cancel_is_error,
                         uint64_t at = 0) const {
    gt::SetRpcStatus(span, s, ClientBlocks());
    if (!s.ok() && (cancel_is_error || s.error_code() != grpc::CANCELLED)) {
      RecordError(span, s.error_code(), s.error_message(), at);
    }
  }

  // The SERVER span's status; `proxy_decided`: the proxy itself refused the
  // call (auth, routing, bad input) - recorded as an error with an exception
  // event.
  void DescribeServerEnd(pt::Span& span, const grpc::Status& s, bool proxy_decided,
                         uint64_t at = 0) const {
    if (server_end_) {
      gt::SetRpcStatus(span, s, *server_end_);
    } else {
      gt::SetRpcStatus(span, s, /*server_side=*/true);
    }
    if (!s.ok() && (proxy_decided || gt::IsServerError(s.error_code()))) {
      RecordError(span, s.error_code(), s.error_message(), at);
    }
  }

  // A child of the SERVER span: started now, or, recording deferred, only
  // timed in `run`.
  pt::Span StartChild(const char* name, SpanRun& run) const {
    if (lazy_) {
      run.start = pt::NowUnixNano();
      return pt::Span();
    }
    pt::StartSpanOptions o;
    o.parent = server_span_.context();
    return svc_.tracer().StartSpan(name, std::move(o));
  }

  // Ends a child started by StartChild; `error`, if any, is what it failed with.
  void EndChild(pt::Span& span, SpanRun& run, const grpc::Status* error) const {
    if (lazy_) {
      run.end = pt::NowUnixNano();
      if (error) run.status = *error;
      return;
    }
    if (error) RecordError(span, error->error_code(), error->error_message());
    span.End();
  }

  // Steps 1-3; OK with endpoint_ set, or the status the call ends with
  // (recorded on the span that decided it).
  grpc::Status Admit(const grpc::ByteBuffer& request) {
    // 1. The namespace, read from field 1 of the raw request, which is
    // checked whole first: bytes protobuf would refuse are INVALID_ARGUMENT
    // here, and an oversized namespace is refused before it is recorded.
    auto ns = ReadRequest(request, kShapes[method_ - kMethods]);
    if (!ns.ok()) return prism::plugin::ToGrpcStatus(ns.status());
    ns_ = std::move(*ns);
    ns_read_ = true;
    server_span_.SetAttribute("prism.namespace", ns_);
    if (ns_.empty()) {
      return grpc::Status(grpc::INVALID_ARGUMENT,
                          "the request names no namespace (field 1 'namespace' is empty)");
    }

    // 2. Authentication and authorization.
    {
      pt::Span auth = StartChild("prism.auth.verify", auth_run_);
      const auto& md = ctx_->client_metadata();
      auto who = svc_.auth().Authenticate(FindMetadata(md, "authorization"));
      absl::Status st = who.ok() ? svc_.auth().Authorize(*who, ns_, method_->right) : who.status();
      if (who.ok()) {
        principal_ = who->name;  // the token list's: lives as long as the proxy
        principal_index_ = who->index;
      }
      DescribeAuth(auth);
      if (!st.ok()) {
        grpc::Status gs = prism::plugin::ToGrpcStatus(st);
        EndChild(auth, auth_run_, &gs);
        return gs;
      }
      EndChild(auth, auth_run_, nullptr);
    }

    // 3. Routing: namespace -> plugin.
    {
      pt::Span route = StartChild("prism.routing.select_plugin", route_run_);
      PluginBackend* backend = svc_.plugins().Find(ns_);
      if (!backend) {
        grpc::Status gs(grpc::NOT_FOUND, "unknown namespace '" + ns_ + "'");
        DescribeRoute(route);
        EndChild(route, route_run_, &gs);
        return gs;
      }
      plugin_name_ = &backend->plugin_name();
      backend_ = backend;
      DescribeRoute(route);
      endpoint_ = backend->endpoint();
      if (!endpoint_) {
        grpc::Status gs(grpc::UNAVAILABLE, "plugin " + backend->plugin_name() + " for namespace '" +
                                               ns_ + "' is down (" + backend->down_reason() + ")");
        EndChild(route, route_run_, &gs);
        return gs;
      }
      EndChild(route, route_run_, nullptr);
    }
    return grpc::Status::OK;
  }

  // The CLIENT span of the forwarded call, its context in `client`'s metadata.
  // x-request-id does not travel: plugins have no use for it (the request is
  // found by its trace), and gRPC sends every extra header as an unindexed
  // literal, costing both processes on every call.
  void StartClientSpan(grpc::ClientContext& client) {
    pt::StartSpanOptions o;
    o.kind = pt::SpanKind::kClient;
    o.parent = server_span_.context();
    o.defer = lazy_;
    o.shared_attributes = ClientBlocks().start();
    client_span_ = svc_.tracer().StartSpan(method_->span_name, std::move(o));
    if (lazy_) client_run_.start = pt::NowUnixNano();
    gt::ClientContextCarrier out(client);
    svc_.propagator().Inject(parent_.WithSpanContext(client_span_.context()), out);
  }

  // A plugin's error as the caller sees it (UNAVAILABLE names the plugin).
  grpc::Status PluginError(const grpc::Status& s) const {
    if (s.error_code() == grpc::UNAVAILABLE) {
      return grpc::Status(grpc::UNAVAILABLE, "plugin " + *plugin_name_ + " for namespace '" + ns_ +
                                                 "' is unavailable: " + s.error_message());
    }
    return s;
  }

  // The SERVER span's status (DescribeServerEnd), or, deferred, noted.
  void EndServerStatus(const grpc::Status& s, bool proxy_decided) {
    if (lazy_) {
      server_run_.status = s;
      server_run_.end = pt::NowUnixNano();  // when the status was known
      proxy_decided_ = proxy_decided;
      return;
    }
    DescribeServerEnd(server_span_, s, proxy_decided);
  }

  // The CLIENT span's end (DescribeClientEnd), or, deferred, noted.
  void EndClientSpan(const grpc::Status& s, bool cancel_is_error) {
    if (lazy_) {
      client_run_.end = pt::NowUnixNano();
      client_run_.status = s;
      cancel_is_error_ = cancel_is_error;
      return;
    }
    DescribeClientEnd(client_span_, s, cancel_is_error);
    client_span_.End();
  }

  // Records the spans of a deferred call whose trace is kept, as they would
  // have been recorded live (the same Describe* calls, the times they ran);
  // call before the SERVER span would have ended.
  void Replay() {
    const pt::Tracer& t = svc_.tracer();
    pt::StartSpanOptions so;
    so.kind = pt::SpanKind::kServer;
    so.parent = parent_.span_context();
    so.root = !parent_.span_context().IsValid();
    so.replay = server_span_.context();
    so.start_unix_nano = server_run_.start;
    pt::Span server = StartServerSpan(std::move(so));
    if (ns_read_) server.SetAttribute("prism.namespace", ns_);
    auto child = [&](const char* name, const SpanRun& run, auto&& describe) {
      if (!run.start) return;
      pt::StartSpanOptions o;
      o.parent = server.context();
      o.start_unix_nano = run.start;
      pt::Span span = t.StartSpan(name, std::move(o));
      describe(span);
      if (!run.status.ok()) {
        RecordError(span, run.status.error_code(), run.status.error_message(), run.end);
      }
      span.End(run.end);
    };
    child("prism.auth.verify", auth_run_, [this](pt::Span& s) { DescribeAuth(s); });
    child("prism.routing.select_plugin", route_run_, [this](pt::Span& s) { DescribeRoute(s); });
    if (client_run_.start) {
      pt::StartSpanOptions co;
      co.kind = pt::SpanKind::kClient;
      co.parent = server.context();
      co.replay = client_span_.context();
      co.start_unix_nano = client_run_.start;
      co.shared_attributes = ClientBlocks().start();
      pt::Span client = t.StartSpan(method_->span_name, std::move(co));
      // A call that never came back (the proxy finished first) ends with it.
      const uint64_t end = client_run_.end ? client_run_.end : pt::NowUnixNano();
      if (client_run_.end) DescribeClientEnd(client, client_run_.status, cancel_is_error_, end);
      client.End(end);
    }
    DescribeServerEnd(server, server_run_.status, proxy_decided_, server_run_.end);
    server.End(pt::NowUnixNano());  // End() would time it from the replay's start
  }

  bool Deferred() const { return deferred_start_ != std::chrono::steady_clock::time_point(); }

  const ProxyService& svc_;
  grpc::CallbackServerContext* ctx_;
  const MethodInfo* method_;
  pt::Context parent_;
  // The method's (as Begin found them) or the caller's (peer_end_).
  const gt::RpcEndBlocks* server_end_ = nullptr;
  std::shared_ptr<const gt::RpcEndBlocks> peer_end_;
  pt::Span server_span_, client_span_;
  std::string request_id_, trace_id_, ns_;
  bool ns_read_ = false;                       // ns_ came from the request
  std::optional<std::string_view> principal_;  // who authenticated
  int principal_index_ = -1;                   // and their token (-1: anonymous)
  const std::string* plugin_name_ = nullptr;
  std::shared_ptr<const Endpoint> endpoint_;
  const PluginBackend* backend_ = nullptr;
  // Adaptive sampling: set when the trace is undecided (deferred).
  std::chrono::steady_clock::time_point deferred_start_;
  // Deferred recording (see the class comment).
  const bool defer_recording_;
  bool lazy_ = false;  // this call's spans are recorded only if kept
  SpanRun server_run_, auth_run_, route_run_, client_run_;
  gt::Endpoint peer_;  // the caller, read when the call began
  bool proxy_decided_ = false, cancel_is_error_ = true;
};

// One forwarded unary call. A unary reactor on the raw (ByteBuffer)
// methods: the request arrives with the call, with no read to start and no
// reaction to wait for - cheaper than a generic bidi stream.
class ForwardReactor final : public grpc::ServerUnaryReactor, ProxiedCall {
 public:
  ForwardReactor(const ProxyService& svc, grpc::CallbackServerContext* ctx,
                 const MethodInfo* method, const grpc::ByteBuffer* request,
                 grpc::ByteBuffer* response)
      : ProxiedCall(svc, ctx, method, /*defer_recording=*/true),
        request_(*request),
        response_(*response) {
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
  void Handle() {
    if (grpc::Status st = Admit(request_); !st.ok()) {
      FinishWith(st, true);
      return;
    }
    // 4. Forward the raw bytes; the CLIENT span's context travels in the
    // metadata. The caller's deadline travels to the plugin; a cancelled caller cancels
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
    StartClientSpan(*client_ctx_);
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
    EndClientSpan(s, /*cancel_is_error=*/true);
    if (s.ok()) {
      FinishWith(s, false);
      return;
    }
    if (s.error_code() == grpc::DEADLINE_EXCEEDED && default_deadline_) {
      s = grpc::Status(grpc::DEADLINE_EXCEEDED,
                       "the call set no deadline and the proxy's default of " +
                           std::to_string(svc_.options().default_deadline.count()) +
                           " ms (limits.default_deadline) passed");
    } else {
      s = PluginError(s);
    }
    FinishWith(s, false);
  }

  // `proxy_decided`: the proxy itself refused the call (auth, routing, bad
  // input) - recorded as an error on the SERVER span with an exception event.
  void FinishWith(const grpc::Status& s, bool proxy_decided) {
    EndServerStatus(s, proxy_decided);
    bool kept_late = false;
    if (Deferred()) {
      // Known now for errors, and for requests already past their latency
      // threshold: the trace will be kept, so the caller gets its id.
      error_ = !s.ok();
      if (error_ || plugin_kept_ ||
          std::chrono::steady_clock::now() - deferred_start_ >= SlowThreshold()) {
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
    // The plugin keeps a trace on its own for an error it saw or for its
    // latency past the namespace's threshold - which the proxy's, enclosing
    // it, is past too - so a plugin's keep without either here is an error
    // only the plugin saw.
    pt::SamplingReason reason = pt::SamplingReason::kNone;
    if (error_) {
      reason = pt::SamplingReason::kError;
    } else if (SlowThreshold().count() > 0 &&
               std::chrono::steady_clock::now() - deferred_start_ >= SlowThreshold()) {
      reason = pt::SamplingReason::kSlow;
    } else if (plugin_kept_) {
      reason = pt::SamplingReason::kError;
    }
    const pt::TraceId& id = server_span_.context().trace_id();
    pt::AdaptiveSampling& adaptive = *svc_.tracer().adaptive();
    if (reason == pt::SamplingReason::kNone) {
      // Recorded live: the SDK drops the trace when the SERVER span ends.
      if (lazy_) adaptive.DropDeferred(id);
      return;
    }
    if (lazy_) {
      adaptive.KeepReplayed(id, reason);
    } else {
      adaptive.Keep(id, reason);
    }
    if (client_ctx_ && endpoint_ && !plugin_kept_) svc_.SendKeep(endpoint_, id, reason);
    if (lazy_) Replay();
  }

  const grpc::ByteBuffer& request_;  // owned by gRPC until OnDone
  grpc::ByteBuffer& response_;
  std::unique_ptr<grpc::ClientContext> client_ctx_;
  std::atomic<bool> forwarding_{false};
  bool default_deadline_ = false;  // the caller set none: the proxy's default applies
  bool plugin_kept_ = false;
  bool error_ = false;
};

}  // namespace

// One forwarded Subscribe: a server-streaming reactor to the caller paired
// with a generic (raw bytes) stream to the plugin. Messages are never
// decoded: the proxy reads fields 1 (subject) and 3 (traceparent) of each
// and appends its own field 3 (wire.h). One message is in flight at a time:
// the next is read from the plugin only when the caller's transport took the
// previous one, so a slow caller holds back its own stream (HTTP/2 flow
// control up to the plugin, whose bounded buffer then drops and counts) and
// nobody else's.
class SubscribeReactor final : public grpc::ServerWriteReactor<grpc::ByteBuffer>, ProxiedCall {
 public:
  SubscribeReactor(const ProxyService& svc, ProxyPubSubService& owner,
                   grpc::CallbackServerContext* ctx, const grpc::ByteBuffer* request)
      : ProxiedCall(svc, ctx, &kMethods[kSubscribeMethod]), owner_(owner), request_(*request) {
    up_.r = this;
    Begin();
    if (grpc::Status st = Admit(request_); !st.ok()) {
      EndServerStatus(st, true);
      FinishCall(st);
      return;
    }
    client_ctx_ = std::make_unique<grpc::ClientContext>();
    // The caller's deadline, if any, travels; there is no default one: a
    // subscription lasts until its caller cancels.
    if (ctx_->deadline() != std::chrono::system_clock::time_point::max()) {
      client_ctx_->set_deadline(ctx_->deadline());
    }
    StartClientSpan(*client_ctx_);
    remaining_.fetch_add(1);  // the plugin stream's OnDone
    // Registered before anything can finish the call (OnDone unregisters);
    // a cancel before StartCall is kept by the ClientContext.
    forwarding_.store(true, std::memory_order_release);
    owner_.Register(this);
    endpoint_->stub->PrepareBidiStreamingCall(client_ctx_.get(), method_->path, grpc::StubOptions(),
                                              &up_);
    up_.StartWriteLast(&request_, grpc::WriteOptions());
    up_.StartRead(&in_);
    up_.StartCall();
    if (ctx_->IsCancelled()) client_ctx_->TryCancel();
  }

  // The caller went away (or the proxy is stopping): end the plugin's stream,
  // which ends its NATS subscription.
  // Holds a reference while cancelling: gRPC may run the plugin stream's
  // OnDone, and so the last Release, inside TryCancel. Every caller runs
  // before this reactor's own OnDone, so the count is above zero here.
  void Cancel() {
    if (!forwarding_.load(std::memory_order_acquire)) return;
    remaining_.fetch_add(1);
    client_ctx_->TryCancel();
    Release();
  }
  void OnCancel() override { Cancel(); }

  void OnWriteDone(bool ok) override {
    deliver_span_.End();
    {
      std::lock_guard<std::mutex> lock(mu_);
      write_pending_ = false;
      if (plugin_done_) {
        FinishCall(final_status_);
        return;
      }
    }
    if (!ok) {
      Cancel();  // the caller's stream is broken: the plugin's OnDone finishes
      return;
    }
    up_.StartRead(&in_);
  }

  void OnDone() override {
    if (forwarding_.load(std::memory_order_acquire)) owner_.Unregister(this);
    server_span_.End();
    Release();
  }

 private:
  struct Upstream final : grpc::ClientBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer> {
    SubscribeReactor* r = nullptr;
    // The plugin subscribed (it sends its headers once NATS confirmed the
    // subscription): so does the caller learn it.
    void OnReadInitialMetadataDone(bool ok) override {
      if (ok) r->StartSendInitialMetadata();
    }
    void OnReadDone(bool ok) override {
      if (ok) r->Deliver();
    }
    void OnDone(const grpc::Status& s) override { r->OnPluginDone(s); }
  };

  void Deliver() {
    std::vector<grpc::Slice> slices;
    out_.Clear();
    if (!in_.Dump(&slices).ok()) slices.clear();
    std::string joined;
    std::string_view bytes;
    if (slices.size() == 1) {
      bytes = std::string_view(reinterpret_cast<const char*>(slices[0].begin()), slices[0].size());
    } else {
      for (const auto& sl : slices)
        joined.append(reinterpret_cast<const char*>(sl.begin()), sl.size());
      bytes = joined;
    }
    // The plugin's CONSUMER span is the parent of the proxy's delivery span,
    // whose context replaces it in the message for the subscriber.
    std::optional<std::string_view> tp = LastStringField(bytes, 3);
    pt::SpanContext parent;
    if (tp && !tp->empty()) {
      std::map<std::string, std::string> fields{{"traceparent", std::string(*tp)}};
      if (auto ts = LastStringField(bytes, 4); ts && !ts->empty()) fields["tracestate"] = *ts;
      pt::MapCarrier carrier(fields);
      parent = svc_.propagator().Extract(carrier, pt::Context()).span_context();
    }
    if (parent.IsValid()) {
      pt::StartSpanOptions o;
      o.kind = pt::SpanKind::kInternal;
      o.parent = parent;
      if (server_span_.context().IsValid())
        o.links.push_back(pt::Link{server_span_.context(), {}, 0});
      deliver_span_ = svc_.tracer().StartSpan("prism.pubsub.deliver", std::move(o));
      if (deliver_span_.IsRecording()) {
        deliver_span_.SetAttribute("prism.namespace", ns_);
        deliver_span_.SetAttribute("prism.plugin", *plugin_name_);
        deliver_span_.SetAttribute("messaging.system", "nats");
        if (auto subject = LastStringField(bytes, 1)) {
          deliver_span_.SetAttribute("messaging.destination.name", std::string(*subject));
        }
        deliver_span_.SetAttribute(
            "messaging.message.body.size",
            static_cast<int64_t>(LastStringField(bytes, 2).value_or("").size()));
      }
    }
    if (deliver_span_.context().IsValid()) {
      std::map<std::string, std::string> fields;
      pt::MapCarrier carrier(fields);
      svc_.propagator().Inject(pt::Context(deliver_span_.context()), carrier);
      std::string tail;
      AppendStringField(tail, 3, fields["traceparent"]);
      slices.emplace_back(tail);
      out_ = grpc::ByteBuffer(slices.data(), slices.size());
    } else {
      out_.Swap(&in_);
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      write_pending_ = true;
    }
    StartWrite(&out_);
  }

  void OnPluginDone(const grpc::Status& s) {
    EndClientSpan(s, /*cancel_is_error=*/false);
    grpc::Status out = s.ok() ? s : PluginError(s);
    EndServerStatus(out, false);
    {
      std::lock_guard<std::mutex> lock(mu_);
      plugin_done_ = true;
      final_status_ = out;
      if (!write_pending_) FinishCall(out);
    }
    Release();
  }

  void FinishCall(const grpc::Status& s) {
    if (!s.ok()) {
      ctx_->AddTrailingMetadata("x-request-id", request_id_);
      if (!trace_id_.empty()) ctx_->AddTrailingMetadata("x-trace-id", trace_id_);
    }
    Finish(s);
  }

  // Deleted when both the caller's stream and the plugin's are done.
  void Release() {
    if (remaining_.fetch_sub(1) == 1) delete this;
  }

  ProxyPubSubService& owner_;
  const grpc::ByteBuffer& request_;  // owned by gRPC until OnDone
  Upstream up_;
  std::unique_ptr<grpc::ClientContext> client_ctx_;
  std::atomic<bool> forwarding_{false};
  std::atomic<int> remaining_{1};
  grpc::ByteBuffer in_, out_;
  pt::Span deliver_span_;
  std::mutex mu_;
  bool write_pending_ = false, plugin_done_ = false;
  grpc::Status final_status_;
};

namespace {

// Anything but the KeyValue and PubSub methods.
class UnimplementedReactor final : public grpc::ServerGenericBidiReactor {
 public:
  explicit UnimplementedReactor(const std::string& method) {
    Finish(grpc::Status(
        grpc::UNIMPLEMENTED,
        "prism-proxy serves prism.v1.KeyValue and prism.v1.PubSub only; unknown method '" +
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
      tracer_(pt::GetTracer("prism-proxy", std::string(pt::kSdkVersion))),
      propagator_(pt::GlobalPropagator()) {
  if (options_.listen_port) set_listen_port(options_.listen_port);
}

void ProxyService::set_listen_port(int port) {
  listen_port_.store(port, std::memory_order_relaxed);
  auto blocks = std::make_unique<MethodBlocks>();
  for (const MethodInfo& m : kMethods) {
    blocks->push_back(std::make_unique<const gt::RpcEndBlocks>(
        pt::AttributeBlock::Make(ServerBlockAttributes(m, options_.listen_host, port)),
        /*server_side=*/true));
  }
  server_attributes_.store(blocks.get(), std::memory_order_release);
  server_attributes_made_.push_back(std::move(blocks));
}

grpc::ServerUnaryReactor* ProxyService::Forward(size_t method, grpc::CallbackServerContext* ctx,
                                                const grpc::ByteBuffer* request,
                                                grpc::ByteBuffer* response) const {
  return new ForwardReactor(*this, ctx, &kMethods[method], request, response);
}

grpc::ServerUnaryReactor* ProxyPubSubService::Publish(grpc::CallbackServerContext* ctx,
                                                      const grpc::ByteBuffer* request,
                                                      grpc::ByteBuffer* response) {
  return kv_.Forward(kPublishMethod, ctx, request, response);
}

grpc::ServerWriteReactor<grpc::ByteBuffer>* ProxyPubSubService::Subscribe(
    grpc::CallbackServerContext* ctx, const grpc::ByteBuffer* request) {
  return new SubscribeReactor(kv_, *this, ctx, request);
}

void ProxyPubSubService::Register(SubscribeReactor* r) {
  std::lock_guard<std::recursive_mutex> lock(mu_);
  open_.insert(r);
  if (stopping_) r->Cancel();
}

void ProxyPubSubService::Unregister(SubscribeReactor* r) {
  std::lock_guard<std::recursive_mutex> lock(mu_);
  open_.erase(r);
}

void ProxyPubSubService::CancelAll() {
  // Held while cancelling: a reactor is freed only after it unregistered,
  // which waits for the lock - unless gRPC runs its OnDone inline in this
  // thread (hence recursive), where the copy keeps the loop valid.
  std::lock_guard<std::recursive_mutex> lock(mu_);
  stopping_ = true;
  std::vector<SubscribeReactor*> open(open_.begin(), open_.end());
  for (SubscribeReactor* r : open) r->Cancel();
}

size_t ProxyPubSubService::open_streams() const {
  std::lock_guard<std::recursive_mutex> lock(mu_);
  return open_.size();
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
