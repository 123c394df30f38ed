#pragma once
// Span: a move-only handle to one operation being timed. A recording span
// owns its SpanData until End() hands it to the processors; a non-recording
// span only carries a SpanContext, so propagation still works.
//
// Thread safety: a Span is NOT thread-safe. One thread at a time may call
// its methods; to work on it from another thread, move it there (the
// calls need no lock because nothing else refers to the record). context()
// may be copied and handed to other threads freely: a SpanContext is a value.
// Lifetime: a Span may outlive its Tracer and TracerProvider; ending it
// after the provider was shut down exports nothing and is safe.

#include <exception>
#include <memory>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

#include "prism/tracing/span_data.h"

namespace prism::tracing {

class Span {
 public:
  Span() = default;
  // A non-recording span around an existing context.
  explicit Span(SpanContext context) : context_(std::move(context)) {}
  // A non-recording span whose trace is undecided and whose recording the
  // caller deferred (StartSpanOptions::defer).
  static Span Deferred(SpanContext context) {
    Span s(std::move(context));
    s.deferred_ = true;
    return s;
  }
  Span(Span&& other) noexcept;
  Span& operator=(Span&& other) noexcept;
  Span(const Span&) = delete;
  Span& operator=(const Span&) = delete;
  // Ends the span if End() was not called.
  ~Span() { End(); }

  const SpanContext& context() const { return data_ ? data_->context : context_; }
  bool IsRecording() const { return data_ != nullptr; }
  // True when recording was deferred (StartSpanOptions::defer): the caller
  // records the span later, with StartSpanOptions::replay, if it is kept.
  bool deferred() const { return deferred_; }

  // A key given as a string literal is not copied (see AttributeKey).
  void SetAttribute(AttributeKey key, AttributeValue value);
  // Strings and integers, the usual values, are built in place in the
  // span's list (no AttributeValue to make, move and destroy on the way).
  // Callgrind, proxied Get: the proxy's three auth-span attributes cost
  // 1,322 instructions a call through AttributeValue, 751 in place
  // (docs/benchmarks.md, "Ninth pass"). Same rules and result as
  // SetAttribute(key, Value(value)).
  template <typename T>
  void SetAttribute(AttributeKey key, T&& value) {
    if (!data_) return;
    using D = std::remove_cvref_t<T>;
    if constexpr (std::is_same_v<D, std::string> && !std::is_lvalue_reference_v<T>) {
      PutString(std::move(key), std::move(value));
    } else if constexpr (std::is_convertible_v<T&&, std::string_view> &&
                         !std::is_same_v<D, std::nullptr_t>) {
      PutString(std::move(key), std::string_view(value));
    } else if constexpr (std::is_integral_v<D> && !std::is_same_v<D, bool>) {
      PutInt(std::move(key), static_cast<int64_t>(value));
    } else {
      SetAttribute(std::move(key), Value(std::forward<T>(value)));
    }
  }
  // Several at once; cheaper than one by one on a span that has none yet.
  void SetAttributes(Attributes attributes);
  // Adds a shared block's attributes (AttributeBlock): referred to when the
  // span has no attributes yet and the block fits its limits, else copied
  // in entry by entry, as SetAttribute would.
  void SetAttributes(const SharedAttributes& block);
  void AddEvent(std::string_view name, Attributes attributes = {});
  void AddEvent(std::string_view name, uint64_t time_unix_nano, Attributes attributes);
  void AddLink(const SpanContext& context, Attributes attributes = {});
  // Follows the OTel rules: Ok is final, Unset is ignored, a description is
  // kept only with Error.
  void SetStatus(StatusCode code, std::string_view description = {});
  void UpdateName(std::string_view name);
  // Adds an "exception" event with exception.type/message/stacktrace.
  // It does not change the status; callers decide that.
  void RecordException(std::string_view type, std::string_view message,
                       std::string_view stacktrace = {});
  // The same, at `time_unix_nano` (a replayed span's error: when it happened).
  void RecordException(uint64_t time_unix_nano, std::string_view type, std::string_view message,
                       std::string_view stacktrace = {});
  void RecordException(const std::exception& e);

  // Ends the span now (or at `end_unix_nano`); later calls do nothing.
  void End();
  void End(uint64_t end_unix_nano);

  // Read access for tests and processors while the span is live.
  const SpanData* data() const { return data_.get(); }

 private:
  friend class Tracer;
  // `key_bits`: the internal::KeyBit filter of the span's attributes (its
  // shared block's and its own).
  Span(std::unique_ptr<SpanData> data, std::shared_ptr<const internal::TracerShared> tracer,
       int64_t start_steady_ns, uint64_t key_bits);
  void Finish(uint64_t end_unix_nano);
  // SetAttribute's body, for a recording span.
  void Put(AttributeKey&& key, AttributeValue&& value);
  // The typed fast paths (recording span): a new key within the limits is
  // appended as it is; anything else goes through Put.
  void PutString(AttributeKey&& key, std::string_view value);
  void PutString(AttributeKey&& key, std::string&& value);
  void PutInt(AttributeKey&& key, int64_t value);
  // Their body (span.cc): `value` appended if Fits, else through Put.
  template <typename V>
  void PutNew(AttributeKey&& key, V&& value);
  // The room check of the fast paths: true when `key` (KeyBit `bit`) is
  // certainly new and one more attribute fits.
  bool Fits(const AttributeKey& key, uint64_t& bit) const;

  std::unique_ptr<SpanData> data_;
  // The pipeline (limits, processors), kept alive while the span records.
  std::shared_ptr<const internal::TracerShared> tracer_;
  int64_t start_steady_ns_ = 0;
  uint64_t key_bits_ = 0;  // internal::KeyBit filter of the span's attributes
  SpanContext context_;    // used only when not recording
  bool deferred_ = false;  // see deferred()
};

// The clock spans use, in nanoseconds since the epoch: what a span's start
// and end times are read from, for times handed to StartSpanOptions and
// End() (a replayed span's).
uint64_t NowUnixNano();

}  // namespace prism::tracing
