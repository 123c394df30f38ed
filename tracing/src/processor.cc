#include "prism/tracing/processor.h"

#include <algorithm>
#include <system_error>
#include <thread>

#include "prism/tracing/diagnostics.h"

namespace prism::tracing {

SimpleSpanProcessor::SimpleSpanProcessor(std::unique_ptr<SpanExporter> exporter)
    : exporter_(std::move(exporter)) {}

void SimpleSpanProcessor::OnEnd(std::unique_ptr<SpanData> span) {
  if (!span->context.IsSampled()) return;
  auto& counters = internal::GlobalCounters();
  std::lock_guard<std::mutex> lock(mutex_);
  if (shut_down_) {
    counters.spans_dropped.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  if (exporter_->Export(std::span<const std::unique_ptr<SpanData>>(&span, 1)) ==
      ExportResult::kSuccess) {
    counters.spans_exported.fetch_add(1, std::memory_order_relaxed);
  } else {
    counters.spans_failed.fetch_add(1, std::memory_order_relaxed);
  }
  RecycleSpanData(std::move(span));
}

bool SimpleSpanProcessor::ForceFlush(Timeout timeout) {
  std::lock_guard<std::mutex> lock(mutex_);
  return shut_down_ || exporter_->ForceFlush(timeout);
}

bool SimpleSpanProcessor::Shutdown(Timeout timeout) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (shut_down_) return true;
  shut_down_ = true;
  return exporter_->Shutdown(timeout);
}

MultiSpanProcessor::MultiSpanProcessor(std::vector<std::unique_ptr<SpanProcessor>> processors)
    : processors_(std::move(processors)) {}

void MultiSpanProcessor::OnStart(SpanData& span, const SpanContext& parent) {
  for (auto& p : processors_) p->OnStart(span, parent);
}

void MultiSpanProcessor::OnEnd(std::unique_ptr<SpanData> span) {
  // Every processor but the last gets a copy; the last gets the original.
  for (size_t i = 0; i + 1 < processors_.size(); ++i) {
    processors_[i]->OnEnd(std::make_unique<SpanData>(*span));
  }
  if (!processors_.empty()) processors_.back()->OnEnd(std::move(span));
}

namespace {
// Runs `step` on every processor at once and waits for all: each gets the
// whole timeout, so one exporter stuck on an unreachable collector neither
// delays the others (the local trace file) past the caller's deadline nor
// makes the total the sum of the timeouts.
template <typename Step>
bool OnAllAtOnce(std::vector<std::unique_ptr<SpanProcessor>>& processors, Step step) {
  if (processors.size() == 1) return step(*processors.front());
  std::vector<std::thread> threads;
  std::vector<char> ok(processors.size(), 0);
  threads.reserve(processors.size());
  for (size_t i = 0; i < processors.size(); ++i) {
    auto run = [&, i] { ok[i] = step(*processors[i]) ? 1 : 0; };
    try {
      threads.emplace_back(run);
    } catch (const std::system_error&) {
      run();  // no thread to be had (resource limits): this one in turn
    }
  }
  for (auto& t : threads) t.join();
  return std::all_of(ok.begin(), ok.end(), [](char v) { return v != 0; });
}
}  // namespace

bool MultiSpanProcessor::ForceFlush(Timeout timeout) {
  return OnAllAtOnce(processors_, [&](SpanProcessor& p) { return p.ForceFlush(timeout); });
}

bool MultiSpanProcessor::Shutdown(Timeout timeout) {
  return OnAllAtOnce(processors_, [&](SpanProcessor& p) { return p.Shutdown(timeout); });
}

}  // namespace prism::tracing
