#pragma once
// A fixed-size pool of backend connections. Thread-safe: any number of
// threads may Acquire at once; each connection is used by one lease at a
// time. A Lease must not outlive its Pool (it returns the connection to the
// pool on destruction). In a plugin the service owns its pool, and Serve
// destroys the service only after the server has drained, so handlers'
// leases always end first. Every Acquire is a
// `pool.acquire` INTERNAL span (child of the caller's span) carrying the
// pool's name and how long the caller waited, so a trace shows time lost
// waiting for a connection apart from time spent in the backend.
//
//   prism::plugin::Pool<Conn> pool("sqlite", std::move(conns), tracer);
//   auto lease = pool.Acquire(server_span_ctx, ctx->deadline());
//   if (!lease.ok()) return ToGrpcStatus(lease.status());   // DEADLINE_EXCEEDED
//   (*lease)->Query(...);                                    // returned on scope exit

#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "prism/tracing/span.h"
#include "prism/tracing/tracer.h"

namespace prism::plugin {

namespace pool_attr {
inline constexpr prism::tracing::AttributeKey kPoolName = "db.client.connection.pool.name";
inline constexpr prism::tracing::AttributeKey kWaitUs = "prism.pool.wait_us";
inline constexpr prism::tracing::AttributeKey kPoolSize = "prism.pool.size";
}  // namespace pool_attr

namespace internal {
// Records the pool.acquire span (non-template part, in pool.cc).
prism::tracing::Span StartAcquireSpan(const prism::tracing::Tracer& tracer,
                                      const prism::tracing::SpanContext& parent,
                                      const std::string& pool_name, size_t size);
void EndAcquireSpan(prism::tracing::Span& span, std::chrono::steady_clock::time_point start,
                    const absl::Status& status);
}  // namespace internal

template <typename T>
class Pool {
 public:
  class Lease {
   public:
    Lease(Lease&& o) noexcept : pool_(o.pool_), item_(std::move(o.item_)) { o.pool_ = nullptr; }
    Lease& operator=(Lease&&) = delete;
    Lease(const Lease&) = delete;
    ~Lease() {
      if (pool_ && item_) pool_->Release(std::move(item_));
    }
    T* get() const { return item_.get(); }
    T* operator->() const { return item_.get(); }
    T& operator*() const { return *item_; }

   private:
    friend class Pool;
    Lease(Pool* pool, std::unique_ptr<T> item) : pool_(pool), item_(std::move(item)) {}
    Pool* pool_;
    std::unique_ptr<T> item_;
  };

  Pool(std::string name, std::vector<std::unique_ptr<T>> items, prism::tracing::Tracer tracer)
      : name_(std::move(name)),
        size_(items.size()),
        idle_(std::move(items)),
        tracer_(std::move(tracer)) {}

  // Waits until an item is free or `deadline` passes (DEADLINE_EXCEEDED).
  // The wait is a pool.acquire span under `parent` (invalid: the thread's
  // current span).
  absl::StatusOr<Lease> Acquire(const prism::tracing::SpanContext& parent,
                                std::chrono::system_clock::time_point deadline) {
    auto start = std::chrono::steady_clock::now();
    prism::tracing::Span span = internal::StartAcquireSpan(tracer_, parent, name_, size_);
    std::unique_lock<std::mutex> lock(mu_);
    while (idle_.empty()) {
      if (cv_.wait_until(lock, deadline) == std::cv_status::timeout && idle_.empty()) {
        lock.unlock();
        absl::Status st = absl::DeadlineExceededError(
            "deadline exceeded waiting for a connection from pool '" + name_ + "' (" +
            std::to_string(size_) + " connections, all busy)");
        internal::EndAcquireSpan(span, start, st);
        return st;
      }
    }
    std::unique_ptr<T> item = std::move(idle_.back());
    idle_.pop_back();
    lock.unlock();
    internal::EndAcquireSpan(span, start, absl::OkStatus());
    return Lease(this, std::move(item));
  }

  const std::string& name() const { return name_; }
  size_t size() const { return size_; }
  size_t idle() const {
    std::lock_guard<std::mutex> lock(mu_);
    return idle_.size();
  }
  // Visits every idle item (startup checks, shutdown); not thread-safe with
  // concurrent Acquire.
  template <typename F>
  void ForEachIdle(F&& f) {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& item : idle_) f(*item);
  }

 private:
  void Release(std::unique_ptr<T> item) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      idle_.push_back(std::move(item));
    }
    cv_.notify_one();
  }

  std::string name_;
  size_t size_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::unique_ptr<T>> idle_;
  prism::tracing::Tracer tracer_;
};

}  // namespace prism::plugin
