#include "prism/grpc_tracing/client.h"

#include "prism/grpc_tracing/carriers.h"
#include "prism/tracing/global.h"
#include "ptr_map.h"

namespace prism::grpc_tracing {

using grpc::experimental::InterceptionHookPoints;
using prism::tracing::Context;
using prism::tracing::Span;
using prism::tracing::SpanContext;

namespace {

internal::PtrMap<SpanContext>& ClientParents() {
  static auto* map = new internal::PtrMap<SpanContext>();
  return *map;
}

struct ClientFactoryState {
  Endpoint server;
  prism::tracing::Tracer tracer;
  std::shared_ptr<const prism::tracing::TextMapPropagator> propagator;
};

class ClientTracingInterceptor final : public grpc::experimental::Interceptor {
 public:
  ClientTracingInterceptor(const ClientFactoryState* state, grpc::experimental::ClientRpcInfo* info)
      : state_(state) {
    // Runs on the thread that starts the call: the current context is the
    // caller's.
    std::optional<SpanContext> parent = ClientParents().Get(info->client_context());
    baggage_ = Context::Current().baggage();
    prism::tracing::StartSpanOptions options;
    options.kind = prism::tracing::SpanKind::kClient;
    if (parent) options.parent = std::move(*parent);
    MethodName method = SplitMethod(info->method() ? info->method() : "");
    span_ = state_->tracer.StartSpan(method.full, std::move(options),
                                     [&] { return RpcStartAttributes(method, state_->server); });
  }

  void Intercept(grpc::experimental::InterceptorBatchMethods* m) override {
    if (m->QueryInterceptionHookPoint(InterceptionHookPoints::PRE_SEND_INITIAL_METADATA)) {
      if (span_.context().IsValid() || !baggage_.empty()) {
        SendMetadataCarrier carrier(*m->GetSendInitialMetadata());
        state_->propagator->Inject(Context(span_.context(), baggage_), carrier);
      }
    }
    if (m->QueryInterceptionHookPoint(InterceptionHookPoints::POST_RECV_STATUS)) {
      if (const grpc::Status* status = m->GetRecvStatus()) {
        SetRpcStatus(span_, *status, /*server_side=*/false);
      }
      span_.End();
    }
    m->Proceed();
  }

 private:
  const ClientFactoryState* state_;
  prism::tracing::Baggage baggage_;
  Span span_;
};

class ClientTracingFactory final : public grpc::experimental::ClientInterceptorFactoryInterface {
 public:
  explicit ClientTracingFactory(ClientTracingOptions options) {
    state_.server = ParseTarget(options.target);
    state_.tracer =
        options.tracer ? *options.tracer : prism::tracing::GetTracer(kClientInstrumentationName);
    state_.propagator =
        options.propagator ? options.propagator : prism::tracing::GlobalPropagator();
  }
  grpc::experimental::Interceptor* CreateClientInterceptor(
      grpc::experimental::ClientRpcInfo* info) override {
    return new ClientTracingInterceptor(&state_, info);
  }

 private:
  ClientFactoryState state_;
};

}  // namespace

std::unique_ptr<grpc::experimental::ClientInterceptorFactoryInterface> MakeClientInterceptorFactory(
    ClientTracingOptions options) {
  return std::make_unique<ClientTracingFactory>(std::move(options));
}

ClientCallParent::ClientCallParent(grpc::ClientContext& ctx, const SpanContext& parent)
    : ctx_(&ctx) {
  ClientParents().Put(ctx_, parent);
}

ClientCallParent::~ClientCallParent() { ClientParents().Erase(ctx_); }

void InjectIntoClientContext(grpc::ClientContext& ctx, const SpanContext& span_context,
                             const prism::tracing::TextMapPropagator* propagator) {
  if (!span_context.IsValid()) return;
  std::shared_ptr<const prism::tracing::TextMapPropagator> global;
  if (propagator == nullptr) {
    global = prism::tracing::GlobalPropagator();
    propagator = global.get();
  }
  ClientContextCarrier carrier(ctx);
  propagator->Inject(Context::Current().WithSpanContext(span_context), carrier);
}

Span StartClientSpan(const prism::tracing::Tracer& tracer, std::string_view method_path,
                     const Endpoint& server, std::optional<SpanContext> parent) {
  prism::tracing::StartSpanOptions options;
  options.kind = prism::tracing::SpanKind::kClient;
  options.parent = std::move(parent);
  MethodName method = SplitMethod(method_path);
  return tracer.StartSpan(method.full, std::move(options),
                          [&] { return RpcStartAttributes(method, server); });
}

}  // namespace prism::grpc_tracing
