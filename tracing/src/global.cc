#include "prism/tracing/global.h"

#include <atomic>
#include <mutex>

namespace prism::tracing {
namespace {
std::mutex& Mutex() {
  static std::mutex* mu = new std::mutex();
  return *mu;
}
std::shared_ptr<TracerProvider>& ProviderSlot() {
  static auto* slot = new std::shared_ptr<TracerProvider>();
  return *slot;
}
std::shared_ptr<const TextMapPropagator>& PropagatorSlot() {
  static auto* slot = new std::shared_ptr<const TextMapPropagator>(MakeCompositePropagator([] {
    std::vector<std::unique_ptr<TextMapPropagator>> v;
    v.push_back(MakeW3CTraceContextPropagator());
    v.push_back(MakeW3CBaggagePropagator());
    return v;
  }()));
  return *slot;
}
}  // namespace

void SetGlobalTracerProvider(std::shared_ptr<TracerProvider> provider) {
  std::lock_guard<std::mutex> lock(Mutex());
  ProviderSlot() = std::move(provider);
}

std::shared_ptr<TracerProvider> GlobalTracerProvider() {
  std::lock_guard<std::mutex> lock(Mutex());
  return ProviderSlot();
}

Tracer GetTracer(std::string_view name, std::string_view version) {
  auto provider = GlobalTracerProvider();
  return provider ? provider->GetTracer(name, version) : Tracer();
}

void SetGlobalPropagator(std::shared_ptr<const TextMapPropagator> propagator) {
  std::lock_guard<std::mutex> lock(Mutex());
  PropagatorSlot() = std::move(propagator);
}

std::shared_ptr<const TextMapPropagator> GlobalPropagator() {
  std::lock_guard<std::mutex> lock(Mutex());
  return PropagatorSlot();
}

}  // namespace prism::tracing
