#include "prism/tracing/exporters/batch_span_processor.h"

#include <pthread.h>

#include <algorithm>
#include <new>

#include "prism/tracing/diagnostics.h"
#include "prism/tracing/env.h"
#include "prism/tracing/exporters/fork.h"

namespace prism::tracing {

using Clock = std::chrono::steady_clock;

// ---------------------------------------------------------------------------
// fork support: a registry of live processors and pthread_atfork handlers.

namespace {

struct ForkRegistry {
  std::mutex mutex;
  std::vector<BatchSpanProcessor*> processors;
};

ForkRegistry& Registry() {
  static auto* registry = new ForkRegistry();  // never destroyed: used by atfork handlers
  return *registry;
}

std::atomic<uint64_t> g_fork_generation{0};

void PrepareAll() {
  Registry().mutex.lock();
  for (auto* p : Registry().processors) p->PrepareFork();
}
void ParentAll() {
  for (auto* p : Registry().processors) p->ParentAfterFork();
  Registry().mutex.unlock();
}
void ChildAll() {
  g_fork_generation.fetch_add(1, std::memory_order_relaxed);
  for (auto* p : Registry().processors) p->ChildAfterFork();
  Registry().mutex.unlock();
}

}  // namespace

namespace fork_support {
uint64_t Generation() { return g_fork_generation.load(std::memory_order_relaxed); }
void InstallHandlers() {
  static std::once_flag once;
  std::call_once(once, [] { pthread_atfork(&PrepareAll, &ParentAll, &ChildAll); });
}
}  // namespace fork_support

// ---------------------------------------------------------------------------

BatchSpanProcessorOptions BatchSpanProcessorOptions::FromEnvironment() {
  BatchSpanProcessorOptions o;
  if (auto v = env::GetMillis("OTEL_BSP_SCHEDULE_DELAY"); v && v->count() >= 0) {
    o.schedule_delay = *v;
  }
  if (auto v = env::GetMillis("OTEL_BSP_EXPORT_TIMEOUT"); v && v->count() >= 0) {
    o.export_timeout = *v;
  }
  if (auto v = env::GetInt("OTEL_BSP_MAX_QUEUE_SIZE")) {
    if (*v > 0) {
      o.max_queue_size = static_cast<size_t>(*v);
    } else {
      internal::Log(internal::LogLevel::kWarn, "OTEL_BSP_MAX_QUEUE_SIZE must be positive; ignored");
    }
  }
  if (auto v = env::GetInt("OTEL_BSP_MAX_EXPORT_BATCH_SIZE")) {
    if (*v > 0) {
      o.max_export_batch_size = static_cast<size_t>(*v);
    } else {
      internal::Log(internal::LogLevel::kWarn,
                    "OTEL_BSP_MAX_EXPORT_BATCH_SIZE must be positive; ignored");
    }
  }
  if (o.max_export_batch_size > o.max_queue_size) {
    internal::Log(internal::LogLevel::kWarn,
                  "OTEL_BSP_MAX_EXPORT_BATCH_SIZE exceeds OTEL_BSP_MAX_QUEUE_SIZE; clamped");
    o.max_export_batch_size = o.max_queue_size;
  }
  return o;
}

namespace {
BatchSpanProcessorOptions Sanitize(BatchSpanProcessorOptions o) {
  if (o.max_queue_size == 0) o.max_queue_size = 1;
  if (o.max_export_batch_size == 0) o.max_export_batch_size = 1;
  o.max_export_batch_size = std::min(o.max_export_batch_size, o.max_queue_size);
  if (o.schedule_delay.count() < 0) o.schedule_delay = std::chrono::milliseconds(0);
  return o;
}
}  // namespace

BatchSpanProcessor::BatchSpanProcessor(std::unique_ptr<SpanExporter> exporter,
                                       BatchSpanProcessorOptions options)
    : options_(Sanitize(options)),
      exporter_(std::move(exporter)),
      capacity_(options_.max_queue_size),
      slots_(new Slot[capacity_]) {
  for (size_t i = 0; i < capacity_; ++i) {
    slots_[i].seq.store(i, std::memory_order_relaxed);
    slots_[i].span = nullptr;
  }
  fork_support::InstallHandlers();
  std::lock_guard lock(Registry().mutex);
  Registry().processors.push_back(this);
}

BatchSpanProcessor::~BatchSpanProcessor() {
  Shutdown(std::chrono::seconds(5));
  {
    std::lock_guard lock(Registry().mutex);
    auto& v = Registry().processors;
    v.erase(std::remove(v.begin(), v.end(), this), v.end());
  }
  ClearQueue(/*count_as_dropped=*/true);
}

size_t BatchSpanProcessor::queued() const {
  uint64_t e = enqueue_pos_.load(std::memory_order_acquire);
  uint64_t d = dequeue_pos_.load(std::memory_order_acquire);
  return e > d ? static_cast<size_t>(e - d) : 0;
}

bool BatchSpanProcessor::Push(SpanData* span) {
  uint64_t pos = enqueue_pos_.load(std::memory_order_relaxed);
  for (;;) {
    Slot& slot = slots_[pos % capacity_];
    uint64_t seq = slot.seq.load(std::memory_order_acquire);
    auto dif = static_cast<int64_t>(seq - pos);
    if (dif == 0) {
      if (enqueue_pos_.compare_exchange_weak(pos, pos + 1, std::memory_order_relaxed)) {
        slot.span = span;
        slot.seq.store(pos + 1, std::memory_order_release);
        return true;
      }
    } else if (dif < 0) {
      return false;  // full
    } else {
      pos = enqueue_pos_.load(std::memory_order_relaxed);
    }
  }
}

SpanData* BatchSpanProcessor::Pop() {
  uint64_t pos = dequeue_pos_.load(std::memory_order_relaxed);
  Slot& slot = slots_[pos % capacity_];
  uint64_t seq = slot.seq.load(std::memory_order_acquire);
  if (static_cast<int64_t>(seq - (pos + 1)) < 0) return nullptr;  // empty (or a push in progress)
  SpanData* span = slot.span;
  slot.span = nullptr;
  slot.seq.store(pos + capacity_, std::memory_order_release);
  dequeue_pos_.store(pos + 1, std::memory_order_release);
  return span;
}

void BatchSpanProcessor::OnEnd(std::unique_ptr<SpanData> span) {
  if (!span || !span->context.IsSampled()) return;
  if (shut_down_.load(std::memory_order_relaxed)) {
    internal::GlobalCounters().spans_dropped.fetch_add(1, std::memory_order_relaxed);
    dropped_.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  if (!worker_running_.load(std::memory_order_acquire)) EnsureWorker();
  SpanData* raw = span.release();
  if (!Push(raw)) {
    delete raw;
    internal::GlobalCounters().spans_dropped.fetch_add(1, std::memory_order_relaxed);
    dropped_.fetch_add(1, std::memory_order_relaxed);
    dropped_since_log_.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  if (queued() >= options_.max_export_batch_size &&
      !batch_signalled_.load(std::memory_order_relaxed) &&
      !batch_signalled_.exchange(true, std::memory_order_acq_rel)) {
    std::lock_guard lock(wake_mutex_);
    wake_cv_.notify_one();
  }
}

void BatchSpanProcessor::EnsureWorker() {
  std::lock_guard lock(worker_mutex_);
  if (worker_running_.load(std::memory_order_relaxed) || shut_down_.load()) return;
  {
    std::lock_guard wake(wake_mutex_);
    stop_ = false;
    worker_exited_ = false;
  }
  worker_ = new std::thread([this] { WorkerLoop(); });
  worker_running_.store(true, std::memory_order_release);
}

size_t BatchSpanProcessor::ExportOneBatch() {
  std::vector<std::unique_ptr<SpanData>> batch;
  batch.reserve(std::min(options_.max_export_batch_size, queued()));
  while (batch.size() < options_.max_export_batch_size) {
    SpanData* s = Pop();
    if (s == nullptr) break;
    batch.emplace_back(s);
  }
  if (batch.empty()) return 0;
  // OTEL_BSP_EXPORT_TIMEOUT=0: no limit of ours (the exporter's own remains).
  const auto deadline = options_.export_timeout.count() > 0 ? Clock::now() + options_.export_timeout
                                                            : Clock::time_point::max();
  ExportResult r =
      exporter_->ExportWithin(std::span<const std::unique_ptr<SpanData>>(batch), deadline);
  export_calls_.fetch_add(1, std::memory_order_relaxed);
  auto& counters = internal::GlobalCounters();
  if (r == ExportResult::kSuccess) {
    exported_spans_.fetch_add(batch.size(), std::memory_order_relaxed);
    counters.spans_exported.fetch_add(batch.size(), std::memory_order_relaxed);
  } else {
    counters.spans_failed.fetch_add(batch.size(), std::memory_order_relaxed);
  }
  const size_t n = batch.size();
  // Back to the SDK for the request threads' next spans: with this thread
  // freeing what they allocate, every span would cost a malloc and a free.
  for (auto& s : batch) RecycleSpanData(std::move(s));
  return n;
}

void BatchSpanProcessor::WorkerLoop() {
  // Visible in top -H and profilers (Linux limits names to 15 characters).
  pthread_setname_np(pthread_self(), "prism-span-exp");
  const size_t batch = options_.max_export_batch_size;
  auto next_export = Clock::now() + options_.schedule_delay;
  std::unique_lock lock(wake_mutex_);
  for (;;) {
    // Re-armed under the lock just before waiting: a producer that finds a
    // full batch after this point signals (under the lock), so no wake-up is
    // lost; one that signalled during the last drain is harmless.
    batch_signalled_.store(false, std::memory_order_release);
    wake_cv_.wait_until(lock, next_export, [&] {
      return stop_ || flush_requested_ != flush_done_ || queued() >= batch;
    });
    const bool stop = stop_;
    const uint64_t flush_target = flush_requested_;
    const bool flush = flush_target != flush_done_;
    const auto deadline = stop_deadline_;
    lock.unlock();

    if (uint64_t n = dropped_since_log_.exchange(0, std::memory_order_relaxed)) {
      internal::Log(internal::LogLevel::kWarn,
                    "BatchSpanProcessor queue is full: dropped " + std::to_string(n) + " spans");
    }

    const bool timer = Clock::now() >= next_export;
    bool exported = false;
    if (stop || flush || timer) {
      // Everything queued now goes, in full batches and one partial one.
      const uint64_t target = enqueue_pos_.load(std::memory_order_acquire);
      while (dequeue_pos_.load(std::memory_order_relaxed) < target) {
        if (stop && Clock::now() >= deadline) break;
        if (ExportOneBatch() == 0) break;
        exported = true;
      }
    } else {
      while (queued() >= batch) {
        ExportOneBatch();
        exported = true;
      }
    }
    if (exported || timer) next_export = Clock::now() + options_.schedule_delay;

    lock.lock();
    if (flush) {
      flush_done_ = flush_target;
      done_cv_.notify_all();
    }
    if (stop) break;
  }
  worker_exited_ = true;
  done_cv_.notify_all();
}

bool BatchSpanProcessor::ForceFlush(Timeout timeout) {
  if (shut_down_.load()) return false;
  const auto deadline = Clock::now() + timeout;
  if (!worker_running_.load(std::memory_order_acquire)) return queued() == 0;
  std::unique_lock lock(wake_mutex_);
  const uint64_t id = ++flush_requested_;
  wake_cv_.notify_one();
  return done_cv_.wait_until(lock, deadline, [&] { return flush_done_ >= id || worker_exited_; }) &&
         flush_done_ >= id;
}

bool BatchSpanProcessor::Shutdown(Timeout timeout) {
  if (shut_down_.exchange(true)) return false;
  const auto deadline = Clock::now() + timeout;
  bool ok = true;
  std::lock_guard worker_lock(worker_mutex_);
  if (worker_ != nullptr && worker_running_.load()) {
    bool exited;
    {
      std::unique_lock lock(wake_mutex_);
      stop_ = true;
      stop_deadline_ = deadline;
      wake_cv_.notify_one();
      exited = done_cv_.wait_until(lock, deadline, [&] { return worker_exited_; });
    }
    if (!exited) {
      // The export in flight overran the deadline: ask the exporter to give
      // up (our exporters abort I/O and retries), then wait for the thread.
      ok = false;
      exporter_->Shutdown(Timeout(0));
    }
    worker_->join();
    delete worker_;
    worker_ = nullptr;
    worker_running_.store(false);
  }
  if (queued() > 0) {
    ok = false;
    ClearQueue(/*count_as_dropped=*/true);
  }
  auto remaining = std::chrono::duration_cast<Timeout>(deadline - Clock::now());
  if (!exporter_->Shutdown(std::max(remaining, Timeout(0)))) ok = false;
  return ok;
}

void BatchSpanProcessor::ClearQueue(bool count_as_dropped) {
  uint64_t n = 0;
  while (SpanData* s = Pop()) {
    delete s;
    ++n;
  }
  if (count_as_dropped && n > 0) {
    internal::GlobalCounters().spans_dropped.fetch_add(n, std::memory_order_relaxed);
    dropped_.fetch_add(n, std::memory_order_relaxed);
  }
}

void BatchSpanProcessor::PrepareFork() {
  worker_mutex_.lock();
  wake_mutex_.lock();
}

void BatchSpanProcessor::ParentAfterFork() {
  wake_mutex_.unlock();
  worker_mutex_.unlock();
}

void BatchSpanProcessor::ChildAfterFork() {
  // The worker thread does not exist here: forget it (its std::thread object
  // is leaked on purpose; destroying or joining it would be wrong).
  worker_ = nullptr;
  worker_running_.store(false);
  // Waiters of the parent's condition variables do not exist either.
  new (&wake_cv_) std::condition_variable();
  new (&done_cv_) std::condition_variable();
  stop_ = false;
  worker_exited_ = false;
  flush_done_ = flush_requested_;
  batch_signalled_.store(false);
  // Queued spans are the parent's to export. They are abandoned, not freed:
  // the usual fork is the proxy launching a plugin, whose child must not
  // touch the allocator before execve (another thread may have held one of
  // its locks at the fork). The cost is at most max_queue_size records once
  // per fork in a child that keeps running. Then reset the ring.
  for (size_t i = 0; i < capacity_; ++i) {
    slots_[i].seq.store(i);
    slots_[i].span = nullptr;
  }
  enqueue_pos_.store(0);
  dequeue_pos_.store(0);
  dropped_since_log_.store(0);
  wake_mutex_.unlock();
  worker_mutex_.unlock();
}

}  // namespace prism::tracing
