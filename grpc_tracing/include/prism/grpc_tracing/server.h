#pragma once
// Server-side gRPC tracing for grpc++ 1.51 (sync, callback and async APIs).
//
//   grpc::ServerBuilder builder;
//   std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>> f;
//   f.push_back(prism::grpc_tracing::MakeServerInterceptorFactory({.server_address = "..."}));
//   builder.experimental().SetInterceptorCreators(std::move(f));
//
// Per call the interceptor extracts the W3C context from the client's
// metadata (the global propagator), starts a SERVER span named
// "pkg.Service/Method" and ends it when the status is sent (or when the call
// is torn down without one: CANCELLED). Handlers reach the span through:
//   - ServerSpanContext(ctx): explicit, for callback/async handlers, which
//     may run on any thread; use it as StartSpanOptions::parent;
//   - the thread's current context, for *sync* handlers only, once
//     InstallSyncHandlerScopes() has been called before the first
//     grpc::Server is built (grpc's Server::GlobalCallbacks run on the
//     handler thread right around the handler).

#include <grpcpp/server_context.h>
#include <grpcpp/support/server_interceptor.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "prism/grpc_tracing/semconv.h"
#include "prism/tracing/context.h"
#include "prism/tracing/propagation.h"
#include "prism/tracing/span_context.h"
#include "prism/tracing/tracer.h"

namespace prism::grpc_tracing {

struct ServerTracingOptions {
  // server.address / server.port of the SERVER spans (the listen address;
  // a Unix socket path with port 0).
  std::string server_address;
  int server_port = 0;
  // Tracer and propagator; unset: the global ones at factory creation
  // (prism::tracing::GetTracer(kInstrumentationName), GlobalPropagator()).
  std::optional<prism::tracing::Tracer> tracer;
  std::shared_ptr<const prism::tracing::TextMapPropagator> propagator;
  // Calls whose method path starts with one of these are not traced.
  std::vector<std::string> excluded_method_prefixes = {"/grpc.health.v1.Health/"};
};

std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface> MakeServerInterceptorFactory(
    ServerTracingOptions options = {});

// The context of the SERVER span of the call `ctx` belongs to, while that
// span is live (from the handler's start until the status is sent); invalid
// otherwise (untraced method, no interceptor). Thread-safe.
prism::tracing::SpanContext ServerSpanContext(const grpc::ServerContextBase* ctx);
// The same with the baggage that arrived with the call.
prism::tracing::Context ServerTraceContext(const grpc::ServerContextBase* ctx);

// Makes the SERVER span current on the handler thread for sync-API handlers.
// Idempotent. Must be called before the first grpc::Server of the process is
// constructed (grpc allows one Server::SetGlobalCallbacks per process; do not
// combine with other code that sets them; calling it after a server exists
// aborts inside grpc). Without it, sync handlers use ServerSpanContext.
void InstallSyncHandlerScopes();

}  // namespace prism::grpc_tracing
