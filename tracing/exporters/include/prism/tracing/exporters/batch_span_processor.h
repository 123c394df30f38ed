#pragma once
// BatchSpanProcessor: queues ended, sampled spans and exports them in batches
// from a background thread (OTel SDK spec "Batching processor").
//
// - OnEnd never blocks: a span is pushed into a bounded lock-free MPSC ring;
//   when the ring is full the span is dropped and counted
//   (Diagnostics().spans_dropped). No lock is held while exporting; the only
//   mutex OnEnd may touch (to wake the worker when a full batch is ready) is
//   held for a notify, never during Export.
// - The worker exports when a full batch (max_export_batch_size) is queued or
//   when schedule_delay has elapsed since the last export, never a few spans
//   at a time as they trickle in.
// - ForceFlush and Shutdown drain the queue, each bounded by its deadline.
// - fork(): in the child the queue is emptied (those spans are the parent's
//   to export; they are abandoned without touching the allocator, so a
//   child may exec safely) and the worker thread is started again lazily by
//   the next OnEnd; exporters from this library reset their connections too.

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "prism/tracing/processor.h"

namespace prism::tracing {

struct BatchSpanProcessorOptions {
  std::chrono::milliseconds schedule_delay{5000};   // OTEL_BSP_SCHEDULE_DELAY
  std::chrono::milliseconds export_timeout{30000};  // OTEL_BSP_EXPORT_TIMEOUT
  size_t max_queue_size = 2048;                     // OTEL_BSP_MAX_QUEUE_SIZE
  size_t max_export_batch_size = 512;               // OTEL_BSP_MAX_EXPORT_BATCH_SIZE

  // Spec defaults overridden by OTEL_BSP_*; invalid values are logged and
  // ignored, and a batch size above the queue size is clamped to it.
  static BatchSpanProcessorOptions FromEnvironment();
};

class BatchSpanProcessor : public SpanProcessor {
 public:
  explicit BatchSpanProcessor(
      std::unique_ptr<SpanExporter> exporter,
      BatchSpanProcessorOptions options = BatchSpanProcessorOptions::FromEnvironment());
  ~BatchSpanProcessor() override;
  BatchSpanProcessor(const BatchSpanProcessor&) = delete;
  BatchSpanProcessor& operator=(const BatchSpanProcessor&) = delete;

  void OnEnd(std::unique_ptr<SpanData> span) override;
  bool ForceFlush(Timeout timeout) override;
  bool Shutdown(Timeout timeout) override;

  const BatchSpanProcessorOptions& options() const { return options_; }
  // Statistics, for tests and benchmarks.
  uint64_t export_calls() const { return export_calls_.load(std::memory_order_relaxed); }
  uint64_t exported_spans() const { return exported_spans_.load(std::memory_order_relaxed); }
  uint64_t dropped_spans() const { return dropped_.load(std::memory_order_relaxed); }
  size_t queued() const;

  // Called by the process-wide pthread_atfork handlers; not for users.
  void PrepareFork();
  void ParentAfterFork();
  void ChildAfterFork();

 private:
  struct Slot {
    std::atomic<uint64_t> seq;
    SpanData* span;
  };

  bool Push(SpanData* span);
  SpanData* Pop();
  void EnsureWorker();
  void WorkerLoop();
  // Pops up to max_export_batch_size spans and exports them; returns how
  // many were exported (0 when the queue was empty).
  size_t ExportOneBatch();
  void ClearQueue(bool count_as_dropped);

  const BatchSpanProcessorOptions options_;
  std::unique_ptr<SpanExporter> exporter_;

  // Vyukov bounded MPMC ring used with a single consumer (the worker).
  const size_t capacity_;
  std::unique_ptr<Slot[]> slots_;
  alignas(64) std::atomic<uint64_t> enqueue_pos_{0};
  alignas(64) std::atomic<uint64_t> dequeue_pos_{0};
  alignas(64) std::atomic<bool> batch_signalled_{false};
  std::atomic<uint64_t> dropped_since_log_{0};

  // Wakes the worker. Never held during Export.
  std::mutex wake_mutex_;
  std::condition_variable wake_cv_;
  uint64_t flush_requested_ = 0;                         // guarded by wake_mutex_
  uint64_t flush_done_ = 0;                              // guarded by wake_mutex_
  bool stop_ = false;                                    // guarded by wake_mutex_
  bool worker_exited_ = false;                           // guarded by wake_mutex_
  std::chrono::steady_clock::time_point stop_deadline_;  // guarded by wake_mutex_
  std::condition_variable done_cv_;

  std::mutex worker_mutex_;  // starting/joining the worker thread
  std::atomic<bool> worker_running_{false};
  std::thread* worker_ = nullptr;  // a raw pointer so a child after fork can forget it
  std::atomic<bool> shut_down_{false};

  std::atomic<uint64_t> export_calls_{0};
  std::atomic<uint64_t> exported_spans_{0};
  std::atomic<uint64_t> dropped_{0};
};

}  // namespace prism::tracing
