#pragma once
// An exporter that keeps copies of exported spans in memory, for tests.

#include <memory>
#include <mutex>
#include <string_view>
#include <vector>

#include "prism/tracing/processor.h"

namespace prism::tracing {

class RecorderExporter;

class InMemorySpanRecorder {
 public:
  InMemorySpanRecorder() : state_(std::make_shared<State>()) {}

  // An exporter feeding this recorder; wrap it in a SimpleSpanProcessor.
  std::unique_ptr<SpanExporter> MakeExporter() const;
  // Shortcut: a SimpleSpanProcessor around MakeExporter().
  std::unique_ptr<SpanProcessor> MakeProcessor() const;

  std::vector<SpanData> spans() const;
  // The recorded spans with this name, in end order.
  std::vector<SpanData> SpansNamed(std::string_view name) const;
  size_t size() const;
  void Clear();

 private:
  struct State {
    mutable std::mutex mutex;
    std::vector<SpanData> spans;
  };
  // The exporter holds it weakly: once the recorder is gone, spans that still
  // end are discarded instead of piling up unseen.
  std::shared_ptr<State> state_;
  friend class RecorderExporter;
};

}  // namespace prism::tracing
