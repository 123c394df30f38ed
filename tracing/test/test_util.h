#pragma once
// Helpers shared by the tracing unit tests.

#include <cstdlib>
#include <memory>
#include <optional>
#include <string>

#include "prism/tracing/in_memory_recorder.h"
#include "prism/tracing/tracer.h"
#include "scoped_env.h"

namespace prism::tracing::testing {


// A provider recording into `recorder` with the given sampler (always_on by default).
inline std::unique_ptr<TracerProvider> RecordingProvider(const InMemorySpanRecorder& recorder,
                                                         std::unique_ptr<Sampler> sampler = nullptr,
                                                         SpanLimits limits = {}) {
  TracerProviderOptions o;
  o.resource = Resource(Attributes{{"service.name", std::string("test-service")}});
  o.sampler = sampler ? std::move(sampler) : MakeAlwaysOnSampler();
  o.limits = limits;
  o.processors.push_back(recorder.MakeProcessor());
  return std::make_unique<TracerProvider>(std::move(o));
}

}  // namespace prism::tracing::testing
