#pragma once
// Helpers for the exporter tests: real spans made by a TracerProvider and
// captured as SpanData.

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "prism/tracing/processor.h"
#include "prism/tracing/tracer.h"
#include "scoped_env.h"

namespace prism::tracing::testing {

// Keeps every ended span.
class CaptureProcessor : public SpanProcessor {
 public:
  struct Store {
    std::mutex mutex;
    std::vector<std::unique_ptr<SpanData>> spans;
  };
  explicit CaptureProcessor(std::shared_ptr<Store> store) : store_(std::move(store)) {}
  void OnEnd(std::unique_ptr<SpanData> span) override {
    std::lock_guard lock(store_->mutex);
    store_->spans.push_back(std::move(span));
  }
  bool ForceFlush(Timeout) override { return true; }
  bool Shutdown(Timeout) override { return true; }

 private:
  std::shared_ptr<Store> store_;
};

// A provider with a fixed resource whose ended spans land in `store`.
inline std::shared_ptr<TracerProvider> MakeCapturingProvider(
    std::shared_ptr<CaptureProcessor::Store> store, Attributes resource_attributes = {}) {
  TracerProviderOptions o;
  if (resource_attributes.empty()) {
    resource_attributes = {{"service.name", std::string("exporter-test")}};
  }
  o.resource = Resource(std::move(resource_attributes), "https://opentelemetry.io/schemas/1.26.0");
  o.processors.push_back(std::make_unique<CaptureProcessor>(std::move(store)));
  return std::make_shared<TracerProvider>(std::move(o));
}

// An exporter that counts and can be slowed down or stalled.
class CountingExporter : public SpanExporter {
 public:
  struct State {
    std::atomic<uint64_t> calls{0};
    std::atomic<uint64_t> spans{0};
    std::atomic<int> delay_ms{0};
    std::atomic<bool> stall{false};
    std::mutex mutex;
    std::vector<size_t> batch_sizes;
  };
  explicit CountingExporter(std::shared_ptr<State> state) : state_(std::move(state)) {}
  ExportResult Export(std::span<const std::unique_ptr<SpanData>> spans) override {
    while (state_->stall.load() && !shut_down_.load()) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    if (int d = state_->delay_ms.load()) std::this_thread::sleep_for(std::chrono::milliseconds(d));
    state_->calls.fetch_add(1);
    state_->spans.fetch_add(spans.size());
    std::lock_guard lock(state_->mutex);
    state_->batch_sizes.push_back(spans.size());
    return ExportResult::kSuccess;
  }
  bool Shutdown(Timeout) override {
    shut_down_.store(true);
    return true;
  }

 private:
  std::shared_ptr<State> state_;
  std::atomic<bool> shut_down_{false};
};

inline std::unique_ptr<SpanData> MakeSampledSpanData(std::string name = "span") {
  auto s = std::make_unique<SpanData>();
  s->context = SpanContext(GenerateTraceId(), GenerateSpanId(), trace_flags::kSampled, false);
  s->name = std::move(name);
  s->start_unix_nano = 1700000000000000000ull;
  s->end_unix_nano = 1700000000000001000ull;
  return s;
}


}  // namespace prism::tracing::testing
