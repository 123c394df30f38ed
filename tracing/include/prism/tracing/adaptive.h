#pragma once
// Adaptive sampling: every trace with an error, every slow trace, a share
// (default 1 %) of the rest and every trace the caller marked sampled - with
// the decision taken when the request ENDS, and complete traces.
//
// Thread-safety: every method of AdaptiveSampling may be called from any
// thread at once. The sampler and processor it makes are thread-safe too.
// Lifetime: the TracerProvider that uses it holds it (shared_ptr); spans of
// undecided traces are owned by it until they are exported or freed.
//
//   prism::tracing::AdaptiveOptions o;               // or AdaptiveOptions::Parse(...)
//   auto adaptive = std::make_shared<prism::tracing::AdaptiveSampling>(o);
//   prism::tracing::TracerProviderOptions p;
//   p.adaptive = adaptive;                           // sampler + processor wrapper
//   ...
//   adaptive->Keep(trace_id, SamplingReason::kSlow); // the caller saw a symptom
//
// How it works (docs/sampling.md, after Hindsight, NSDI '23):
// - At a trace's first span in this process the sampler keeps, up front, the
//   traces the caller sampled (reason "parent") and the consistent-probability
//   share (reason "ratio", `ot=th:` in tracestate, the same decision as any
//   OTel SDK's traceidratio sampler for the trace id). Both are sampled spans
//   and take the ordinary export path.
// - Every other span is RECORDED but not sampled (deferred): when it ends it
//   goes into a bounded buffer keyed by trace id instead of the exporters.
// - A span that ends with status ERROR keeps its trace at once. When the
//   local root (the span whose parent is remote or absent) ends, a head
//   process decides: error seen, or root at least `slow` long -> keep; else
//   drop. A downstream process (a plugin, behind the proxy) keeps waiting up
//   to `decision_wait` for its caller's verdict: Keep() called from the
//   outside (the proxy's trigger RPC), else the trace is dropped whole.
// - Kept: the buffered spans go to the exporters with the sampled flag set;
//   spans of the trace that end later follow them (late spans). Dropped or
//   evicted: freed whole; late spans of it are discarded and counted.
// - The buffer holds at most `buffer_bytes` (estimated) of undecided spans;
//   past it the oldest undecided traces are evicted WHOLE, never in part,
//   and counted. A trace with more than `max_trace_spans` undecided spans is
//   evicted whole too (one huge trace cannot starve the others). A trace
//   whose local root never ends (a stuck call) is kept as "slow" once it is
//   `trace_timeout` old.

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "prism/tracing/attributes.h"
#include "prism/tracing/ids.h"
#include "prism/tracing/processor.h"
#include "prism/tracing/sampler.h"
#include "prism/tracing/span_context.h"

namespace prism::tracing {

enum class SamplingReason : uint8_t { kNone = 0, kParent, kRatio, kError, kSlow };
// "parent", "ratio", "error", "slow" ("" for kNone).
std::string_view ToString(SamplingReason reason);
std::optional<SamplingReason> ParseSamplingReason(std::string_view s);

// The attribute that names why a trace was kept, on the local root span of
// a head process (the proxy's SERVER span).
inline constexpr AttributeKey kSamplingReasonKey = "prism.sampling.reason";

struct AdaptiveOptions {
  enum class Role : uint8_t {
    kHead,        // decides at its local root's end (the proxy, a standalone program)
    kDownstream,  // waits for its caller's verdict (a plugin behind the proxy)
  };
  Role role = Role::kHead;
  // Share of the remaining traces kept, consistent-probability rule.
  // Applied where a trace enters a head process; a downstream process
  // follows its caller's sampled flag instead.
  double ratio = 0.01;
  // A local root at least this long keeps its trace; 0 turns the rule off
  // (the proxy decides latency per namespace itself and calls Keep).
  std::chrono::milliseconds slow{100};
  // Estimated bytes of undecided spans held, at most.
  size_t buffer_bytes = size_t{32} << 20;
  // Downstream: how long an undecided trace whose local root ended waits
  // for Keep() before it is dropped.
  std::chrono::milliseconds decision_wait{500};
  // An undecided trace this old whose local root has not ended is kept
  // (reason "slow": it certainly is).
  std::chrono::milliseconds trace_timeout{30000};
  // How long a decision is remembered for spans that end after it.
  std::chrono::milliseconds remember{5000};
  // At most this many decisions remembered (the oldest are forgotten first).
  size_t max_remembered = 1 << 17;
  // Undecided spans one trace may hold before it is evicted whole.
  size_t max_trace_spans = 1000;
  // Monotonic clock in nanoseconds (tests inject simulated time).
  std::function<int64_t()> steady_now_ns;
  // A thread that sweeps expired traces every `sweep_interval`; tests turn
  // it off and call Sweep().
  bool background_sweep = true;
  std::chrono::milliseconds sweep_interval{100};

  // OTEL_TRACES_SAMPLER_ARG for OTEL_TRACES_SAMPLER=prism_adaptive: a
  // comma-separated list of key=value, every key optional:
  //   ratio=0.01  slow_ms=100  buffer_mb=32  wait_ms=500  timeout_ms=30000
  //   role=head|downstream
  // e.g. "ratio=0.05,slow_ms=250". Returns nullopt with `*error` set for an
  // unknown key or a bad value.
  static std::optional<AdaptiveOptions> Parse(std::string_view arg, std::string* error);
};

struct AdaptiveCounters {
  uint64_t traces = 0;           // traces entering this process (local roots started)
  uint64_t kept_parent = 0;      // kept: the caller sampled them
  uint64_t kept_ratio = 0;       // kept: the probabilistic share
  uint64_t kept_error = 0;       // kept: an error
  uint64_t kept_slow = 0;        // kept: latency (timed-out traces included)
  uint64_t kept_trigger = 0;     // downstream: kept because the caller said so
  uint64_t dropped = 0;          // decided not to keep: freed whole
  uint64_t evicted = 0;          // undecided traces evicted whole at a bound
  uint64_t evicted_spans = 0;    // their spans
  uint64_t timed_out = 0;        // undecided traces decided by trace_timeout (in kept_slow)
  uint64_t late_kept = 0;        // spans that ended after their trace was kept: exported
  uint64_t late_dropped = 0;     // spans that ended after their trace was dropped: discarded
  uint64_t unmatched_keeps = 0;  // Keep() for a trace with nothing buffered (yet)
  uint64_t buffered_spans = 0;   // now
  uint64_t buffered_bytes = 0;   // now (estimated)
  uint64_t peak_buffered_bytes = 0;
  // One line: "traces=... kept(parent=... ratio=... error=... slow=...) ..."
  std::string ToString() const;
};

// A local root span whose recording was deferred (StartSpanOptions::defer)
// and that its instrumentation can record later, whole - what it needs to
// (its context, times, attributes' sources, status) held in this object.
// Handed to EndDeferred when the span ends; recorded only if its trace is
// kept (grpc_tracing's server interceptor in a plugin: docs/sampling.md).
class DeferredSpan {
 public:
  virtual ~DeferredSpan() = default;
  // Records the span (StartSpanOptions::replay, with the times it ran).
  // Called at most once, on whichever thread keeps the trace, no lock held.
  virtual void Record() = 0;
  // An estimate of the heap it holds, for the buffer's bound.
  virtual size_t Bytes() const = 0;
};

class AdaptiveSampling {
 public:
  explicit AdaptiveSampling(AdaptiveOptions options);
  ~AdaptiveSampling();
  AdaptiveSampling(const AdaptiveSampling&) = delete;
  AdaptiveSampling& operator=(const AdaptiveSampling&) = delete;

  // The sampler of the provider (see the header comment).
  std::unique_ptr<Sampler> MakeSampler();
  // Wraps the provider's export pipeline: sampled spans pass through,
  // deferred ones are buffered. Call once; `next` may be null (nothing is
  // exported, decisions are still counted).
  std::unique_ptr<SpanProcessor> MakeProcessor(std::unique_ptr<SpanProcessor> next);

  // Keeps trace `trace_id`: its buffered spans are exported now, spans that
  // end later as they end (for `remember`). Idempotent; the first reason
  // counts. A trace already dropped stays dropped (counted as unmatched).
  void Keep(const TraceId& trace_id, SamplingReason reason);
  // Deferred recording (StartSpanOptions::defer), in a head process whose
  // instrumentation recorded nothing of an undecided trace while it ran:
  // KeepReplayed keeps `trace_id` before the caller records its spans
  // (StartSpanOptions::replay), which then go to the exporters as they end,
  // with the sampled flag and `prism.sampling.reason` on the local root (not
  // counted as late spans); DropDeferred decides it dropped (counted; spans
  // other code recorded of it are freed whole, later ones discarded).
  void KeepReplayed(const TraceId& trace_id, SamplingReason reason);
  void DropDeferred(const TraceId& trace_id);
  // Ends the deferred local root `span` of `context`: decided like a
  // recorded root ending - `error` keeps its trace, a duration of at least
  // `slow` too; otherwise a head drops it and a downstream process waits for
  // its caller's verdict. Kept, now or later, it is recorded (Record). True
  // when the trace is kept by the time this returns.
  bool EndDeferred(const SpanContext& context, std::unique_ptr<DeferredSpan> span, bool error,
                   uint64_t duration_ns);
  // Whether `trace_id` has been decided kept here (by Keep or an error).
  bool IsKept(const TraceId& trace_id) const;

  // Decides what has expired (downstream waits, stuck traces, remembered
  // decisions). Runs on the background thread; tests call it directly.
  void Sweep();
  // Drops every undecided trace and stops the sweeper (provider shutdown).
  void Shutdown();

  AdaptiveCounters Counters() const;
  const AdaptiveOptions& options() const;

  struct State;  // internal

 private:
  std::shared_ptr<State> state_;
};

// The options from OTEL_TRACES_SAMPLER_ARG when OTEL_TRACES_SAMPLER is
// prism_adaptive; nullopt otherwise. A bad argument is logged and the
// defaults are used. `role` is the process's role unless the argument says.
std::optional<AdaptiveOptions> AdaptiveOptionsFromEnvironment(
    AdaptiveOptions::Role role, const env::Defaults* defaults = nullptr);

}  // namespace prism::tracing
