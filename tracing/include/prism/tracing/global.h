#pragma once
// The process-wide tracer provider and propagator, for instrumentation that
// cannot be handed one (gRPC interceptors, plugin helpers).

#include <memory>

#include "prism/tracing/propagation.h"
#include "prism/tracing/tracer.h"

namespace prism::tracing {

// Until set, a disabled provider (no-op tracers) and the W3C tracecontext +
// baggage propagator.
void SetGlobalTracerProvider(std::shared_ptr<TracerProvider> provider);
std::shared_ptr<TracerProvider> GlobalTracerProvider();
Tracer GetTracer(std::string_view name, std::string_view version = {});

void SetGlobalPropagator(std::shared_ptr<const TextMapPropagator> propagator);
std::shared_ptr<const TextMapPropagator> GlobalPropagator();

}  // namespace prism::tracing
