#pragma once
// Helpers shared by the tracing unit tests.

#include <cstdlib>
#include <memory>
#include <optional>
#include <string>

#include "prism/tracing/in_memory_recorder.h"
#include "prism/tracing/tracer.h"

namespace prism::tracing::testing {

// Sets an environment variable for the life of the object.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old;
    if (value) {
      setenv(name, value, 1);
    } else {
      unsetenv(name);
    }
  }
  ~ScopedEnv() {
    if (old_) {
      setenv(name_.c_str(), old_->c_str(), 1);
    } else {
      unsetenv(name_.c_str());
    }
  }

 private:
  std::string name_;
  std::optional<std::string> old_;
};

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
