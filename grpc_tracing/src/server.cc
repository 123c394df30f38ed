#include "prism/grpc_tracing/server.h"

#include <grpcpp/server.h>

#include <atomic>
#include <map>
#include <mutex>
#include <new>

#include "prism/grpc_tracing/carriers.h"
#include "prism/grpc_tracing/semconv.h"
#include "prism/tracing/adaptive.h"
#include "prism/tracing/context.h"
#include "prism/tracing/global.h"
#include "prism/tracing/span.h"
#include "ptr_map.h"

namespace prism::grpc_tracing {

using grpc::experimental::InterceptionHookPoints;
using prism::tracing::Context;
using prism::tracing::Span;
using prism::tracing::SpanContext;

namespace {

internal::PtrMap<Context>& ServerSpans() {
  static auto* map = new internal::PtrMap<Context>();
  return *map;
}

struct ServerFactoryState {
  // Shared with the deferred spans (DeferredServerSpan), which may be
  // recorded after the server that made them is gone.
  std::shared_ptr<const Endpoint> server;
  prism::tracing::Tracer tracer;
  std::shared_ptr<const prism::tracing::TextMapPropagator> propagator;
  std::vector<std::string> excluded;

  // The attributes every SERVER span of `method` starts with
  // (RpcStartAttributes), a block shared by its calls, and the blocks it
  // ends with (RpcEndBlocks), made on its first call. A server's methods
  // are few and fixed; past kMaxBlocks distinct names a call gets blocks of
  // its own, held by `own`. The result lives as long as this state or `own`.
  //
  // gRPC hands every call of a registered method the same name pointer, so
  // the first kFastSlots methods are found by that pointer, and a check of
  // the name (a generic call's name lives in the call, and a later call's
  // may reuse its address), without a lock (callgrind, proxied Get: the
  // lock and map lookup cost the plugin ~300 instructions a call;
  // docs/benchmarks.md, "Ninth pass").
  const RpcEndBlocks* Blocks(const char* name, const MethodName& method,
                             std::shared_ptr<const RpcEndBlocks>& own) const {
    for (const auto& slot : fast) {
      const char* key = slot.name.load(std::memory_order_acquire);
      if (key == nullptr) break;
      if (key == name && *slot.full == method.full) return slot.blocks;
    }
    auto make = [&] {
      return std::make_unique<const RpcEndBlocks>(
          prism::tracing::AttributeBlock::Make(RpcStartAttributes(method, *server)),
          /*server_side=*/true);
    };
    std::lock_guard lock(mu);
    auto it = blocks.find(method.full);
    if (it == blocks.end()) {
      if (blocks.size() >= kMaxBlocks) {
        own = make();
        return own.get();
      }
      it = blocks.emplace(std::string(method.full), make()).first;
    }
    if (name != nullptr) {
      for (auto& slot : fast) {  // under mu: the only writer
        const char* key = slot.name.load(std::memory_order_relaxed);
        if (key == name && *slot.full == method.full) break;
        if (key == nullptr) {
          slot.blocks = it->second.get();
          slot.full = &it->first;  // a map key: never moves nor goes
          slot.name.store(name, std::memory_order_release);
          break;
        }
      }
    }
    return it->second.get();
  }
  static constexpr size_t kMaxBlocks = 256;
  static constexpr size_t kFastSlots = 16;
  struct FastSlot {
    std::atomic<const char*> name{nullptr};  // set once, after the others
    const std::string* full = nullptr;       // the method's full name
    const RpcEndBlocks* blocks = nullptr;
  };
  mutable FastSlot fast[kFastSlots];
  mutable std::mutex mu;
  mutable std::map<std::string, std::unique_ptr<const RpcEndBlocks>, std::less<>> blocks;
};

// The SERVER span of a call whose trace adaptive sampling left undecided,
// recorded only if the trace is kept (AdaptiveSampling::EndDeferred): what
// the live path would have recorded, from what this holds. In a plugin 99
// calls in 100 are dropped 500 ms after they end; they then cost this
// object, not a span record (docs/sampling.md, "Deferred recording").
class DeferredServerSpan final : public prism::tracing::DeferredSpan {
 public:
  DeferredServerSpan(prism::tracing::Tracer tracer, std::shared_ptr<const Endpoint> server,
                     std::string method, SpanContext parent, SpanContext context, Endpoint peer,
                     uint64_t start, uint64_t end, grpc::Status status)
      : tracer_(std::move(tracer)),
        server_(std::move(server)),
        method_(std::move(method)),
        parent_(std::move(parent)),
        context_(std::move(context)),
        peer_(std::move(peer)),
        start_(start),
        end_(end),
        status_(std::move(status)) {}

  void Record() override {
    const MethodName method = SplitMethod(method_);
    prism::tracing::StartSpanOptions options;
    options.kind = prism::tracing::SpanKind::kServer;
    options.parent = parent_;
    options.replay = context_;
    options.start_unix_nano = start_;
    // Recorded for the few kept calls only: their start attributes are
    // made here rather than looked up (a lock) for every deferred call.
    Span span = tracer_.StartSpan(method.full, std::move(options),
                                  [&] { return RpcStartAttributes(method, *server_); });
    DescribePeer(span, peer_);
    SetRpcStatus(span, status_, /*server_side=*/true);
    span.End(end_);
  }

  size_t Bytes() const override {
    return sizeof(*this) + method_.capacity() + status_.error_message().capacity();
  }

  // The live path's peer attributes, and the replay's.
  static void DescribePeer(Span& span, const Endpoint& peer) {
    if (!span.IsRecording()) return;
    ForEachPeerAttribute(peer, [&](const auto& key, auto value) {
      span.SetAttribute(key, prism::tracing::Value(value));
    });
  }

 private:
  prism::tracing::Tracer tracer_;
  std::shared_ptr<const Endpoint> server_;
  std::string method_;
  SpanContext parent_, context_;
  Endpoint peer_;
  uint64_t start_, end_;
  grpc::Status status_;
};

class ServerTracingInterceptor final : public grpc::experimental::Interceptor {
 public:
  ServerTracingInterceptor(const ServerFactoryState* state, grpc::experimental::ServerRpcInfo* info)
      : state_(state), ctx_(info->server_context()), method_(info->method()) {}

  ~ServerTracingInterceptor() override {
    if (registered_) ServerSpans().Erase(ctx_);
    if (started_ && !finished_) {
      // Torn down without a status (cancelled before the handler finished).
      const grpc::Status cancelled(grpc::StatusCode::CANCELLED, "call ended without a status");
      if (span_.deferred()) {
        EndDeferred(cancelled);
      } else {
        EndStatus(cancelled);
      }
    }
  }

  void Intercept(grpc::experimental::InterceptorBatchMethods* m) override {
    if (m->QueryInterceptionHookPoint(InterceptionHookPoints::POST_RECV_INITIAL_METADATA)) {
      Start(m->GetRecvInitialMetadata());
    }
    if (m->QueryInterceptionHookPoint(InterceptionHookPoints::PRE_SEND_STATUS)) {
      Finish(m->GetSendStatus(), m->GetSendTrailingMetadata());
    }
    m->Proceed();
  }

 private:
  void Start(const std::multimap<grpc::string_ref, grpc::string_ref>* md) {
    if (started_) return;
    started_ = true;
    MethodName method = SplitMethod(method_ ? method_ : "");
    Context incoming;
    if (md != nullptr && !md->empty()) {
      ServerMetadataCarrier carrier(*md);
      incoming = state_->propagator->Extract(carrier, Context());
    }
    prism::tracing::StartSpanOptions options;
    options.kind = prism::tracing::SpanKind::kServer;
    options.parent = incoming.span_context();  // invalid: a new trace
    // Adaptive sampling, trace undecided: recorded only if kept.
    options.defer = true;
    // The start attributes (a block per method) are looked up only for a
    // sampler that reads them or a span that records, now or perhaps later.
    const bool eager = state_->tracer.SamplerReadsAttributes();
    if (eager) {
      blocks_ = state_->Blocks(method_, method, own_blocks_);
      options.shared_attributes = blocks_->start();
    }
    span_ = state_->tracer.StartSpan(method.full, std::move(options));
    if (span_.deferred()) {
      parent_ = incoming.span_context();
      peer_ = ParsePeer(ctx_->peer());
      start_ns_ = prism::tracing::NowUnixNano();
    } else if (span_.IsRecording()) {
      if (!eager) {
        blocks_ = state_->Blocks(method_, method, own_blocks_);
        span_.SetAttributes(blocks_->start());
      }
      DeferredServerSpan::DescribePeer(span_, ParsePeer(ctx_->peer()));
    }
    if (span_.context().IsValid() || !incoming.baggage().empty()) {
      ServerSpans().Put(ctx_, incoming.WithSpanContext(span_.context()));
      registered_ = true;
    }
  }

  void Finish(const grpc::Status& status, std::multimap<std::string, std::string>* trailers) {
    if (!started_ || finished_) return;
    finished_ = true;
    if (registered_) {
      ServerSpans().Erase(ctx_);
      registered_ = false;
    }
    if (span_.deferred()) {
      // Kept (an error here, its latency, or its caller's trigger already):
      // the caller is told, as below.
      if (EndDeferred(status) && trailers) {
        trailers->emplace(kTraceResponseKey, FormatTraceResponse(span_.context()));
      }
      return;
    }
    EndStatus(status);
    // Adaptive sampling: an unsampled (deferred) call whose trace this
    // process kept - an error here, or its caller's trigger already -
    // tells the caller, so the caller keeps its part too.
    if (span_.IsRecording() && !span_.context().IsSampled() && trailers) {
      if (prism::tracing::AdaptiveSampling* adaptive = state_->tracer.adaptive()) {
        if (span_.data()->status == prism::tracing::StatusCode::kError ||
            adaptive->IsKept(span_.context().trace_id())) {
          trailers->emplace(kTraceResponseKey, FormatTraceResponse(span_.context()));
        }
      }
    }
    span_.End();
  }

  // The live span's status attributes: its method's end block when it still
  // refers to the start block.
  void EndStatus(const grpc::Status& status) {
    if (blocks_) {
      SetRpcStatus(span_, status, *blocks_);
    } else {
      SetRpcStatus(span_, status, /*server_side=*/true);
    }
  }

  // Hands the deferred span to adaptive sampling; true when its trace is kept.
  bool EndDeferred(const grpc::Status& status) {
    const uint64_t end = prism::tracing::NowUnixNano();
    prism::tracing::AdaptiveSampling* adaptive = state_->tracer.adaptive();
    if (!adaptive) return false;
    const SpanContext& context = span_.context();
    return adaptive->EndDeferred(context,
                                 std::make_unique<DeferredServerSpan>(
                                     state_->tracer, state_->server, method_ ? method_ : "",
                                     parent_, context, std::move(peer_), start_ns_, end, status),
                                 IsServerError(status.error_code()),
                                 end > start_ns_ ? end - start_ns_ : 0);
  }

  const ServerFactoryState* state_;
  grpc::ServerContextBase* ctx_;
  const char* method_;
  Span span_;
  const RpcEndBlocks* blocks_ = nullptr;            // a recording span's method blocks
  std::shared_ptr<const RpcEndBlocks> own_blocks_;  // blocks_, when not state_'s
  // Deferred recording: what DeferredServerSpan needs besides the status.
  SpanContext parent_;
  Endpoint peer_;
  uint64_t start_ns_ = 0;
  bool started_ = false;
  bool finished_ = false;
  bool registered_ = false;
};

class ServerTracingFactory final : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  explicit ServerTracingFactory(ServerTracingOptions options) {
    state_.server = std::make_shared<const Endpoint>(
        Endpoint{std::move(options.server_address), options.server_port});
    state_.tracer =
        options.tracer ? *options.tracer : prism::tracing::GetTracer(kInstrumentationName);
    state_.propagator =
        options.propagator ? options.propagator : prism::tracing::GlobalPropagator();
    state_.excluded = std::move(options.excluded_method_prefixes);
  }

  grpc::experimental::Interceptor* CreateServerInterceptor(
      grpc::experimental::ServerRpcInfo* info) override {
    std::string_view method = info->method() ? info->method() : "";
    for (const auto& prefix : state_.excluded) {
      if (method.substr(0, prefix.size()) == prefix) return nullptr;
    }
    return new ServerTracingInterceptor(&state_, info);
  }

 private:
  ServerFactoryState state_;
};

// Sync handlers: make the SERVER span current on the handler thread. The
// scopes live in trivially destructible thread-local storage (a thread may
// exit after its last handler without running destructors we depend on).
constexpr int kMaxSyncDepth = 4;
struct SyncScopeStack {
  alignas(prism::tracing::Scope) unsigned char slots[kMaxSyncDepth][sizeof(prism::tracing::Scope)];
  bool pushed[kMaxSyncDepth];
  int depth;
};
thread_local SyncScopeStack t_sync_scopes;

class SyncHandlerCallbacks final : public grpc::Server::GlobalCallbacks {
 public:
  void PreSynchronousRequest(grpc::ServerContext* context) override {
    SyncScopeStack& s = t_sync_scopes;
    int d = s.depth++;
    if (d >= kMaxSyncDepth) return;
    s.pushed[d] = false;
    std::optional<Context> ctx =
        ServerSpans().Get(static_cast<const grpc::ServerContextBase*>(context));
    if (ctx) {
      new (s.slots[d]) prism::tracing::Scope(std::move(*ctx));
      s.pushed[d] = true;
    }
  }
  void PostSynchronousRequest(grpc::ServerContext*) override {
    SyncScopeStack& s = t_sync_scopes;
    if (s.depth == 0) return;
    int d = --s.depth;
    if (d >= kMaxSyncDepth || !s.pushed[d]) return;
    std::launder(reinterpret_cast<prism::tracing::Scope*>(s.slots[d]))->~Scope();
    s.pushed[d] = false;
  }
};

}  // namespace

std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface> MakeServerInterceptorFactory(
    ServerTracingOptions options) {
  return std::make_unique<ServerTracingFactory>(std::move(options));
}

SpanContext ServerSpanContext(const grpc::ServerContextBase* ctx) {
  std::optional<Context> c = ServerSpans().Get(ctx);
  return c ? c->span_context() : SpanContext();
}

Context ServerTraceContext(const grpc::ServerContextBase* ctx) {
  std::optional<Context> c = ServerSpans().Get(ctx);
  return c ? std::move(*c) : Context();
}

void InstallSyncHandlerScopes() {
  static std::once_flag once;
  std::call_once(once, [] { grpc::Server::SetGlobalCallbacks(new SyncHandlerCallbacks()); });
}

}  // namespace prism::grpc_tracing
