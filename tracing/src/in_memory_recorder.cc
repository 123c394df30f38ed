#include "prism/tracing/in_memory_recorder.h"

#include "shared.h"

namespace prism::tracing {
class RecorderExporter : public SpanExporter {
 public:
  explicit RecorderExporter(std::weak_ptr<InMemorySpanRecorder::State> state)
      : state_(std::move(state)) {}
  ExportResult Export(std::span<const std::unique_ptr<SpanData>> batch) override {
    auto state = state_.lock();
    if (!state) return ExportResult::kSuccess;  // nobody is listening any more
    std::lock_guard<std::mutex> lock(state->mutex);
    for (const auto& s : batch) {
      // Tests read one list: the shared block's entries are copied in.
      state->spans.push_back(*s);
      internal::Flatten(state->spans.back());
    }
    return ExportResult::kSuccess;
  }
  bool Shutdown(Timeout) override { return true; }

 private:
  std::weak_ptr<InMemorySpanRecorder::State> state_;
};

std::unique_ptr<SpanExporter> InMemorySpanRecorder::MakeExporter() const {
  return std::make_unique<RecorderExporter>(state_);
}
std::unique_ptr<SpanProcessor> InMemorySpanRecorder::MakeProcessor() const {
  return std::make_unique<SimpleSpanProcessor>(MakeExporter());
}

std::vector<SpanData> InMemorySpanRecorder::spans() const {
  std::lock_guard<std::mutex> lock(state_->mutex);
  return state_->spans;
}

std::vector<SpanData> InMemorySpanRecorder::SpansNamed(std::string_view name) const {
  std::lock_guard<std::mutex> lock(state_->mutex);
  std::vector<SpanData> out;
  for (const auto& s : state_->spans) {
    if (s.name == name) out.push_back(s);
  }
  return out;
}

size_t InMemorySpanRecorder::size() const {
  std::lock_guard<std::mutex> lock(state_->mutex);
  return state_->spans.size();
}

void InMemorySpanRecorder::Clear() {
  std::lock_guard<std::mutex> lock(state_->mutex);
  state_->spans.clear();
}

}  // namespace prism::tracing
