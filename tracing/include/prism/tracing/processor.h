#pragma once
// Span processors (hooks at span start and end) and exporters (where ended
// sampled spans go).
//
// Thread safety: a SpanProcessor's OnStart and OnEnd are called on whatever
// thread starts or ends a span, so concurrently with each other and with
// ForceFlush; they must be thread-safe and should not block. Shutdown is
// called once by the provider; OnEnd may still arrive afterwards from spans
// that outlived it and must then drop the span. A SpanExporter's Export is
// called by one thread at a time (the processor serialises it), so an
// exporter needs no lock of its own for it.

#include <chrono>
#include <memory>
#include <mutex>
#include <span>
#include <vector>

#include "prism/tracing/span_data.h"

namespace prism::tracing {

using Timeout = std::chrono::microseconds;

enum class ExportResult { kSuccess, kFailure };

// Receives batches of ended, sampled spans. Export is called by one thread
// at a time; it must not keep pointers to the spans after it returns.
class SpanExporter {
 public:
  virtual ~SpanExporter() = default;
  virtual ExportResult Export(std::span<const std::unique_ptr<SpanData>> spans) = 0;
  // Export that gives up at `deadline` (the batch processor's
  // OTEL_BSP_EXPORT_TIMEOUT). Exporters that wait on a network override it;
  // the default, for exporters that never block long, ignores the deadline.
  virtual ExportResult ExportWithin(std::span<const std::unique_ptr<SpanData>> spans,
                                    std::chrono::steady_clock::time_point /*deadline*/) {
    return Export(spans);
  }
  virtual bool ForceFlush(Timeout /*timeout*/) { return true; }
  virtual bool Shutdown(Timeout timeout) = 0;
};

class SpanProcessor {
 public:
  virtual ~SpanProcessor() = default;
  virtual void OnStart(SpanData& /*span*/, const SpanContext& /*parent*/) {}
  // Called for every recording span when it ends; owns the span from here.
  virtual void OnEnd(std::unique_ptr<SpanData> span) = 0;
  virtual bool ForceFlush(Timeout timeout) = 0;
  virtual bool Shutdown(Timeout timeout) = 0;
};

// Exports each sampled span synchronously as it ends (tests, debugging).
class SimpleSpanProcessor : public SpanProcessor {
 public:
  explicit SimpleSpanProcessor(std::unique_ptr<SpanExporter> exporter);
  void OnEnd(std::unique_ptr<SpanData> span) override;
  bool ForceFlush(Timeout timeout) override;
  bool Shutdown(Timeout timeout) override;

 private:
  std::mutex mutex_;  // the spec requires Export calls to be serialized
  std::unique_ptr<SpanExporter> exporter_;
  bool shut_down_ = false;
};

// Fans out to several processors in order; flushes and shuts them down
// concurrently, each with the whole timeout.
class MultiSpanProcessor : public SpanProcessor {
 public:
  explicit MultiSpanProcessor(std::vector<std::unique_ptr<SpanProcessor>> processors);
  void OnStart(SpanData& span, const SpanContext& parent) override;
  void OnEnd(std::unique_ptr<SpanData> span) override;
  bool ForceFlush(Timeout timeout) override;
  bool Shutdown(Timeout timeout) override;

 private:
  std::vector<std::unique_ptr<SpanProcessor>> processors_;
};

// Discards everything (for benchmarks and disabled pipelines).
class NoopSpanExporter : public SpanExporter {
 public:
  ExportResult Export(std::span<const std::unique_ptr<SpanData>>) override {
    return ExportResult::kSuccess;
  }
  bool Shutdown(Timeout) override { return true; }
};

}  // namespace prism::tracing
