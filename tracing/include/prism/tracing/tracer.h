#pragma once
// Tracer (starts spans for one instrumentation scope) and TracerProvider
// (owns the pipeline: resource, sampler, limits, processors).
//
// Thread safety: a Tracer is an immutable value, cheap to copy; any number
// of threads may call StartSpan on one Tracer, or on copies, at once.
// TracerProvider's methods are thread-safe: GetTracer and ForceFlush may run
// concurrently with spans starting and ending on other threads; Shutdown may
// be called more than once and from any thread (the first call shuts down,
// later ones return true at once).
// Lifetime: Tracers and Spans share the pipeline with the provider, so they
// may outlive it: once the provider is shut down or destroyed, their spans
// are no longer exported.

#include <memory>
#include <optional>
#include <string_view>
#include <vector>

#include "prism/tracing/limits.h"
#include "prism/tracing/processor.h"
#include "prism/tracing/resource.h"
#include "prism/tracing/sampler.h"
#include "prism/tracing/span.h"

namespace prism::tracing {

struct StartSpanOptions {
  SpanKind kind = SpanKind::kInternal;
  // Explicit parent for asynchronous code. When absent, the thread's current
  // span context is the parent (unless `root`).
  std::optional<SpanContext> parent;
  bool root = false;
  // Attributes many spans share (attributes.h, AttributeBlock): the span
  // refers to the block instead of copying it. Its attributes are the
  // block's, then `attributes`; where both have a key, `attributes` wins.
  // The span copies the block in when it must (a sampler that reads start
  // attributes, limits the block does not fit, a key set again), so what is
  // recorded and exported is the same as with every entry in `attributes`.
  SharedAttributes shared_attributes;
  Attributes attributes;
  std::vector<Link> links;
  uint64_t start_unix_nano = 0;  // 0 = now
  // Deferred recording, for instrumentation that can describe its spans
  // again once a trace is decided (the proxy; docs/sampling.md). When the
  // provider samples adaptively and leaves this span's trace undecided, the
  // span records NOTHING: it is non-recording, with deferred() true and the
  // context a recorded span would have had (ids, flags, tracestate), so
  // propagation is unchanged. If the trace is kept, the caller records the
  // span then with `replay`; if not, nothing was paid for it.
  bool defer = false;
  // Records a span that ran deferred: it takes this context (the deferred
  // Span's context()) instead of asking the sampler and making new ids.
  // Combine with `start_unix_nano` and End(end_unix_nano) for its times.
  std::optional<SpanContext> replay;
};

namespace internal {
struct ProviderShared;
}
class AdaptiveSampling;

class Tracer {
 public:
  // A tracer that never records (what a disabled SDK hands out).
  Tracer() = default;

  // Takes the attributes and links out of `options` (an rvalue: the
  // options are neither copied nor moved) or out of a copy (a const lvalue).
  Span StartSpan(std::string_view name, StartSpanOptions&& options) const;
  Span StartSpan(std::string_view name, const StartSpanOptions& options) const;
  // Shorthands: the thread's current span is the parent.
  Span StartSpan(std::string_view name, SpanKind kind = SpanKind::kInternal) const;

  bool enabled() const { return shared_ != nullptr; }
  // The provider's adaptive sampling (tracing/adaptive.h), or null when it
  // uses another sampler. Lets instrumentation keep a trace it saw fail or
  // run slow (AdaptiveSampling::Keep).
  AdaptiveSampling* adaptive() const;
  // True when the sampler reads start attributes: build them before
  // StartSpan. False: build them only if the span records (SetAttributes).
  bool SamplerReadsAttributes() const;

  // StartSpan whose start attributes come from `make_attributes()`, called
  // only when someone will read them: before the decision for a sampler that
  // reads attributes, otherwise after it and only for a recording span. An
  // unsampled span pays for none of them.
  template <typename MakeAttributes>
  Span StartSpan(std::string_view name, StartSpanOptions&& options,
                 MakeAttributes&& make_attributes) const {
    const bool eager = SamplerReadsAttributes();
    if (eager) options.attributes = make_attributes();
    Span span = Start(name, options);
    if (!eager && span.IsRecording()) span.SetAttributes(make_attributes());
    return span;
  }

 private:
  friend class TracerProvider;
  explicit Tracer(std::shared_ptr<const internal::TracerShared> shared)
      : shared_(std::move(shared)) {}
  // Takes attributes and links out of `options`.
  Span Start(std::string_view name, StartSpanOptions& options) const;
  Span Recording(std::unique_ptr<SpanData> data, int64_t start_steady_ns, uint64_t key_bits,
                 StartSpanOptions& options, const SpanContext& parent) const;
  std::shared_ptr<const internal::TracerShared> shared_;
};

struct TracerProviderOptions {
  Resource resource = Resource::FromEnvironment();
  std::unique_ptr<Sampler> sampler;  // null: parentbased_always_on
  // Adaptive sampling: when set, `sampler` is ignored; the provider samples
  // with adaptive->MakeSampler() and sends spans through
  // adaptive->MakeProcessor(processors).
  std::shared_ptr<AdaptiveSampling> adaptive;
  SpanLimits limits;
  std::vector<std::unique_ptr<SpanProcessor>> processors;
  // True makes every tracer a no-op (OTEL_SDK_DISABLED=true).
  bool disabled = false;
  // Log the self-diagnostics counters (info level) when shut down.
  bool log_diagnostics_at_shutdown = false;
};

class TracerProvider {
 public:
  explicit TracerProvider(TracerProviderOptions options);
  // Shuts down (flushing with a 5 s deadline) if Shutdown was not called.
  ~TracerProvider();
  TracerProvider(const TracerProvider&) = delete;
  TracerProvider& operator=(const TracerProvider&) = delete;

  Tracer GetTracer(std::string_view name, std::string_view version = {},
                   std::string_view schema_url = {}) const;
  bool ForceFlush(Timeout timeout = std::chrono::seconds(5));
  bool Shutdown(Timeout timeout = std::chrono::seconds(5));
  bool disabled() const { return shared_ == nullptr; }
  const Resource* resource() const;

 private:
  std::shared_ptr<internal::ProviderShared> shared_;
};

// True when OTEL_SDK_DISABLED is "true" (case-insensitive).
bool SdkDisabledByEnvironment();

}  // namespace prism::tracing
