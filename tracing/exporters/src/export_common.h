#pragma once
// Pieces shared by the OTLP exporters: the deadline-taking base, the retry
// loop, an interruptible sleep, gzip, and counting.

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>

#include "prism/tracing/exporters/otlp_exporter.h"
#include "prism/tracing/processor.h"

namespace prism::tracing::otlp_internal {

using Clock = std::chrono::steady_clock;

// Base of the OTLP exporters: a plain Export has no caller's deadline, only
// the exporter's own timeout.
class DeadlineExporter : public SpanExporter {
 public:
  ExportResult Export(std::span<const std::unique_ptr<SpanData>> spans) final {
    return ExportWithin(spans, Clock::time_point::max());
  }
};

struct AttemptResult {
  enum Kind { kOk, kRetryable, kFatal, kAborted } kind = kOk;
  std::optional<std::chrono::milliseconds> retry_after;  // server-requested delay
  std::string error;                                     // for the log
  int64_t rejected_spans = 0;                            // partial success
  std::string partial_message;

  static AttemptResult Fail(Kind kind, std::string error) {
    AttemptResult r;
    r.kind = kind;
    r.error = std::move(error);
    return r;
  }
};

// Interruptible waits; Interrupt() makes every current and later wait return.
class Stopper {
 public:
  // Waits until `until` or Interrupt(); returns false if interrupted.
  bool SleepUntil(Clock::time_point until) {
    std::unique_lock lock(mutex_);
    return !cv_.wait_until(lock, until, [&] { return stopped_; });
  }
  void Interrupt() {
    std::lock_guard lock(mutex_);
    stopped_ = true;
    cv_.notify_all();
  }
  bool stopped() const {
    std::lock_guard lock(mutex_);
    return stopped_;
  }

 private:
  mutable std::mutex mutex_;
  std::condition_variable cv_;
  bool stopped_ = false;
};

// Runs `attempt(deadline)` until it succeeds, fails for good, attempts run
// out, or the next wait would pass `deadline`. Returns the last result.
template <typename Attempt>
AttemptResult RunWithRetries(const OtlpRetryPolicy& policy, Clock::time_point deadline,
                             Stopper& stopper, Attempt&& attempt);

// Uniform random factor in [lo, hi) for jitter (per-thread generator).
double Jitter(double lo, double hi);

template <typename Attempt>
AttemptResult RunWithRetries(const OtlpRetryPolicy& policy, Clock::time_point deadline,
                             Stopper& stopper, Attempt&& attempt) {
  double backoff_ms = static_cast<double>(policy.initial_backoff.count());
  AttemptResult result;
  for (int i = 1;; ++i) {
    result = attempt(deadline);
    if (result.kind != AttemptResult::kRetryable) return result;
    if (i >= policy.max_attempts) {
      result.error += " (gave up after " + std::to_string(i) + " attempts)";
      return result;
    }
    std::chrono::milliseconds delay;
    if (result.retry_after) {
      delay = *result.retry_after;
    } else {
      delay = std::chrono::milliseconds(static_cast<int64_t>(backoff_ms * Jitter(0.8, 1.2)));
    }
    backoff_ms =
        std::min(backoff_ms * policy.multiplier, static_cast<double>(policy.max_backoff.count()));
    if (Clock::now() + delay >= deadline) {
      result.error += " (no time left to retry within the export timeout)";
      return result;
    }
    if (!stopper.SleepUntil(Clock::now() + delay)) {
      result.kind = AttemptResult::kAborted;
      result.error += " (exporter shut down)";
      return result;
    }
  }
}

// gzip (RFC 1952) via zlib. Returns false on failure.
bool Gzip(const std::string& in, std::string& out);

// Logs the outcome of one Export call of `n` spans and counts the spans a
// partial success rejected as failed. (The processor that called Export
// counts the batch as exported or failed from the ExportResult.)
void Account(const char* exporter, size_t n, const AttemptResult& result);

}  // namespace prism::tracing::otlp_internal
