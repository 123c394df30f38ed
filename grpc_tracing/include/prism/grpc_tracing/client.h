#pragma once
// Client-side gRPC tracing for grpc++ 1.51.
//
//   std::vector<std::unique_ptr<grpc::experimental::ClientInterceptorFactoryInterface>> f;
//   f.push_back(prism::grpc_tracing::MakeClientInterceptorFactory({.target = target}));
//   auto channel = grpc::experimental::CreateCustomChannelWithInterceptors(
//       target, grpc::InsecureChannelCredentials(), grpc::ChannelArguments(), std::move(f));
//
// Each call gets a CLIENT span named "pkg.Service/Method" whose parent is the
// explicit parent set with ClientCallParent (if any), else the thread's
// current span; traceparent/tracestate (and baggage) go into the outgoing
// metadata; the span ends when the status arrives, ERROR on any non-OK code.
//
// Code that cannot use interceptors (a generic-stub forwarder) uses
// StartClientSpan + InjectIntoClientContext + SetRpcStatus (semconv.h).

#include <grpcpp/client_context.h>
#include <grpcpp/support/client_interceptor.h>

#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "prism/grpc_tracing/semconv.h"
#include "prism/tracing/context.h"
#include "prism/tracing/propagation.h"
#include "prism/tracing/span.h"
#include "prism/tracing/tracer.h"

namespace prism::grpc_tracing {

struct ClientTracingOptions {
  // The channel target; server.address/server.port come from it
  // (semconv: the logical target, not the resolved IP).
  std::string target;
  std::optional<prism::tracing::Tracer> tracer;  // unset: global, at creation
  std::shared_ptr<const prism::tracing::TextMapPropagator> propagator;  // unset: global
};

std::unique_ptr<grpc::experimental::ClientInterceptorFactoryInterface> MakeClientInterceptorFactory(
    ClientTracingOptions options = {});

// Sets the explicit parent of the CLIENT span of the call made with `ctx`
// (for callback/async code where the thread's current span is not the
// right parent). Keep it alive until the call has been started (the stub
// method has returned); it unregisters on destruction.
class ClientCallParent {
 public:
  ClientCallParent(grpc::ClientContext& ctx, const prism::tracing::SpanContext& parent);
  ~ClientCallParent();
  ClientCallParent(const ClientCallParent&) = delete;
  ClientCallParent& operator=(const ClientCallParent&) = delete;

 private:
  grpc::ClientContext* ctx_;
};

// Writes the W3C headers of `span_context` (and the current baggage) into
// `ctx` with the global propagator (or `propagator`). Call before the call
// starts. Nothing is written for an invalid context.
void InjectIntoClientContext(grpc::ClientContext& ctx,
                             const prism::tracing::SpanContext& span_context,
                             const prism::tracing::TextMapPropagator* propagator = nullptr);

// Starts a CLIENT span for `method_path` ("/pkg.Service/Method") to `server`
// with the RPC start attributes. parent unset: the thread's current span.
// End it with SetRpcStatus(span, status, /*server_side=*/false) + End().
prism::tracing::Span StartClientSpan(const prism::tracing::Tracer& tracer,
                                     std::string_view method_path, const Endpoint& server,
                                     std::optional<prism::tracing::SpanContext> parent = {});

}  // namespace prism::grpc_tracing
