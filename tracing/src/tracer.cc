#include "prism/tracing/tracer.h"

#include "prism/tracing/context.h"
#include "prism/tracing/diagnostics.h"
#include "prism/tracing/env.h"
#include "shared.h"

namespace prism::tracing {

Span Tracer::StartSpan(std::string_view name, SpanKind kind) const {
  if (!shared_) return Span(CurrentSpanContext());  // disabled: as cheap as it gets
  StartSpanOptions options;
  options.kind = kind;
  return Start(name, options);
}

Span Tracer::StartSpan(std::string_view name, StartSpanOptions&& options) const {
  return Start(name, options);
}

Span Tracer::StartSpan(std::string_view name, const StartSpanOptions& options) const {
  StartSpanOptions copy = options;
  return Start(name, copy);
}

namespace {
SamplingResult ReplayResult(const SpanContext& replayed) {
  SamplingResult r;
  r.decision =
      replayed.IsSampled() ? SamplingDecision::kRecordAndSample : SamplingDecision::kRecordOnly;
  return r;
}
}  // namespace

Span Tracer::Start(std::string_view name, StartSpanOptions& options) const {
  const SpanContext& parent = options.root     ? SpanContext::Invalid()
                              : options.parent ? *options.parent
                                               : CurrentSpanContext();
  if (!shared_) {
    // A disabled SDK still propagates: the parent's context passes through.
    return Span(parent);
  }
  const internal::ProviderShared& provider = *shared_->provider;
  if (options.shared_attributes && provider.sampler_reads_attributes) {
    // The sampler sees the span's whole list.
    Attributes merged = options.shared_attributes->attributes();
    for (auto& kv : options.attributes) merged.push_back(std::move(kv));
    options.attributes = std::move(merged);
    options.shared_attributes.reset();
  }
  const bool has_parent = parent.IsValid();
  // A span that ran deferred, recorded now (replay): its context was decided
  // (and handed out) when it ran; the sampler saw it then. The result is
  // made in place, not assigned from a temporary: two SamplingResult
  // destructors a span were ~45 instructions (callgrind, tenth pass in
  // docs/benchmarks.md).
  const TraceId trace_id = options.replay ? TraceId()
                           : has_parent   ? parent.trace_id()
                                          : GenerateTraceId();
  SamplingResult result =
      options.replay
          ? ReplayResult(*options.replay)
          : provider.sampler->ShouldSample(SamplingParameters{parent, trace_id, name, options.kind,
                                                              options.attributes, options.links});
  SpanContext context;
  if (options.replay) {
    context = std::move(*options.replay);
  } else {
    // Roots get the W3C Level 2 random flag (our ids are random); children
    // keep whatever their parent had, as the spec requires.
    uint8_t flags = has_parent ? (parent.flags() & trace_flags::kRandom) : trace_flags::kRandom;
    if (result.decision == SamplingDecision::kRecordAndSample) flags |= trace_flags::kSampled;
    TraceState state = result.trace_state ? std::move(*result.trace_state)
                       : has_parent       ? parent.trace_state()
                                          : TraceState();
    context = SpanContext(trace_id, GenerateSpanId(), flags, false, std::move(state));
  }

  if (result.decision == SamplingDecision::kDrop ||
      provider.shut_down.load(std::memory_order_relaxed)) {
    return Span(std::move(context));
  }
  // Only adaptive sampling leaves a trace undecided (record-only) for a
  // later verdict; with any other sampler record-only spans are never
  // exported, so deferring them is not offered.
  if (options.defer && result.decision == SamplingDecision::kRecordOnly && provider.adaptive) {
    return Span::Deferred(std::move(context));
  }

  std::unique_ptr<SpanData> data = internal::NewSpanData();
  data->context = std::move(context);
  if (has_parent) {
    data->parent_span_id = parent.span_id();
    data->parent_is_remote = parent.IsRemote();
  }
  // A new or recycled record's name is empty (RecycleSpanData clears it,
  // keeping its capacity): appending skips assign's general replace, ~35
  // instructions a span (callgrind, tenth pass in docs/benchmarks.md).
  data->name.append(name);
  data->kind = options.kind;
  const internal::ClockReading now = internal::Now();
  const int64_t steady = now.steady_nanos;
  data->start_unix_nano = options.start_unix_nano ? options.start_unix_nano : now.wall_nanos;
  const SpanLimits& limits = provider.limits;
  uint64_t key_bits = 0;  // the span's KeyBit filter, built with its attributes
  const AttributeBlock* block = options.shared_attributes.get();
  const size_t block_size = block ? block->size() : 0;
  bool taken = false;
  if (block_size + options.attributes.size() + result.attributes.size() <= limits.attribute_count &&
      result.attributes.empty() &&
      (limits.attribute_value_length == std::numeric_limits<uint32_t>::max() ||
       ((!block || block->longest_value() <= limits.attribute_value_length) &&
        internal::ValuesWithin(options.attributes, limits.attribute_value_length)))) {
    // Common case: nothing to truncate or drop for the limits, so the list is
    // taken as it is once its keys are canonical (the rules PutAttribute
    // applies one by one), and the block is referred to if no key of the
    // list is in it.
    key_bits = internal::Canonicalize(options.attributes);
    if (!block || internal::Disjoint(*block, options.attributes, key_bits)) {
      if (block) {
        key_bits |= block->key_bits();
        data->shared_attributes = std::move(options.shared_attributes);
      }
      data->attributes = std::move(options.attributes);
      taken = true;
    }
  }
  if (!taken) {
    if (block) {
      // The general path, one entry at a time: the block's first.
      Attributes merged = block->attributes();
      for (auto& kv : options.attributes) merged.push_back(std::move(kv));
      options.attributes = std::move(merged);
      options.shared_attributes.reset();
      key_bits = 0;
    }
    for (Attributes* list : {&options.attributes, &result.attributes}) {
      for (auto& kv : *list) {
        internal::PutAttribute(data->attributes, data->dropped_attributes_count,
                               limits.attribute_count, limits.attribute_value_length,
                               std::move(kv.key), std::move(kv.value), &key_bits);
      }
    }
  }
  return Recording(std::move(data), steady, key_bits, options, parent);
}

// Start's recording end, apart so that its Span is made in the caller's
// place: Start's other returns kept GCC from constructing the named span
// there, a Span move and destructor each time (~60 instructions a span;
// callgrind, tenth pass in docs/benchmarks.md).
Span Tracer::Recording(std::unique_ptr<SpanData> data, int64_t start_steady_ns, uint64_t key_bits,
                       StartSpanOptions& options, const SpanContext& parent) const {
  data->origin = shared_->origin;
  Span span(std::move(data), shared_, start_steady_ns, key_bits);
  for (auto& link : options.links) span.AddLink(link.context, std::move(link.attributes));
  internal::GlobalCounters().spans_started.fetch_add(1, std::memory_order_relaxed);
  if (SpanProcessor* processor = shared_->provider->processor.get()) {
    processor->OnStart(*span.data_, parent);
  }
  return span;
}

bool Tracer::SamplerReadsAttributes() const {
  return shared_ && shared_->provider->sampler_reads_attributes;
}

TracerProvider::TracerProvider(TracerProviderOptions options) {
  if (options.disabled) return;
  shared_ = std::make_shared<internal::ProviderShared>();
  shared_->resource = std::make_shared<const Resource>(std::move(options.resource));
  shared_->adaptive = std::move(options.adaptive);
  if (shared_->adaptive) {
    shared_->sampler = shared_->adaptive->MakeSampler();
  } else {
    shared_->sampler = options.sampler ? std::move(options.sampler)
                                       : MakeParentBasedSampler(MakeAlwaysOnSampler());
  }
  shared_->sampler_reads_attributes = shared_->sampler->ReadsAttributes();
  shared_->limits = options.limits;
  shared_->log_diagnostics_at_shutdown = options.log_diagnostics_at_shutdown;
  if (options.processors.size() == 1) {
    shared_->processor = std::move(options.processors.front());
  } else if (!options.processors.empty()) {
    shared_->processor = std::make_unique<MultiSpanProcessor>(std::move(options.processors));
  }
  if (shared_->adaptive) {
    shared_->processor = shared_->adaptive->MakeProcessor(std::move(shared_->processor));
  }
}

AdaptiveSampling* Tracer::adaptive() const {
  return shared_ ? shared_->provider->adaptive.get() : nullptr;
}

TracerProvider::~TracerProvider() { Shutdown(std::chrono::seconds(5)); }

Tracer TracerProvider::GetTracer(std::string_view name, std::string_view version,
                                 std::string_view schema_url) const {
  if (!shared_) return Tracer();
  auto origin = std::make_shared<internal::SpanOrigin>();
  origin->scope.name = std::string(name);
  origin->scope.version = std::string(version);
  origin->scope.schema_url = std::string(schema_url);
  origin->resource = shared_->resource;
  auto t = std::make_shared<internal::TracerShared>();
  t->origin = std::move(origin);
  t->provider = shared_;
  return Tracer(std::move(t));
}

bool TracerProvider::ForceFlush(Timeout timeout) {
  if (!shared_ || !shared_->processor) return true;
  return shared_->processor->ForceFlush(timeout);
}

bool TracerProvider::Shutdown(Timeout timeout) {
  if (!shared_) return true;
  if (shared_->shut_down.exchange(true)) return true;
  bool ok = shared_->processor ? shared_->processor->Shutdown(timeout) : true;
  if (shared_->log_diagnostics_at_shutdown) {
    internal::Log(internal::LogLevel::kInfo, "tracing shut down: " + Diagnostics().ToString());
    if (shared_->adaptive) {
      internal::Log(internal::LogLevel::kInfo,
                    "adaptive sampling: " + shared_->adaptive->Counters().ToString());
    }
  }
  return ok;
}

const Resource* TracerProvider::resource() const {
  return shared_ ? shared_->resource.get() : nullptr;
}

bool SdkDisabledByEnvironment() {
  auto v = env::GetEnum("OTEL_SDK_DISABLED");
  return v && *v == "true";
}

}  // namespace prism::tracing
