#pragma once
// Samplers: decide at span start whether a span is recorded and sampled.

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "prism/tracing/attributes.h"
#include "prism/tracing/env.h"
#include "prism/tracing/span_data.h"

namespace prism::tracing {

enum class SamplingDecision { kDrop, kRecordOnly, kRecordAndSample };

struct SamplingResult {
  SamplingDecision decision = SamplingDecision::kDrop;
  Attributes attributes;
  // The tracestate of the new span; nullopt keeps the parent's.
  std::optional<TraceState> trace_state;
};

struct SamplingParameters {
  const SpanContext& parent;  // invalid for a root
  const TraceId& trace_id;
  std::string_view name;
  SpanKind kind;
  const Attributes& attributes;
  const std::vector<Link>& links;
};

class Sampler {
 public:
  virtual ~Sampler() = default;
  virtual SamplingResult ShouldSample(const SamplingParameters& params) const = 0;
  virtual std::string Description() const = 0;
  // Whether ShouldSample looks at the span's start attributes. Instrumentation
  // may skip building them for spans that turn out not to record when no
  // sampler reads them (the built-in samplers do not).
  virtual bool ReadsAttributes() const { return true; }
};

std::unique_ptr<Sampler> MakeAlwaysOnSampler();
std::unique_ptr<Sampler> MakeAlwaysOffSampler();
// Consistent probability sampling (OTel tracestate-probability-sampling):
// keep iff R >= T, where R is `ot=rv` from the parent's tracestate or the low
// 56 bits of the trace id, and T = 2^56 - round(ratio * 2^56). Sampled spans
// carry `ot=th:<T>` in their tracestate; unsampled ones carry no `th`.
std::unique_ptr<Sampler> MakeTraceIdRatioSampler(double ratio);

struct ParentBasedOptions {
  std::unique_ptr<Sampler> remote_parent_sampled;      // default always_on
  std::unique_ptr<Sampler> remote_parent_not_sampled;  // default always_off
  std::unique_ptr<Sampler> local_parent_sampled;       // default always_on
  std::unique_ptr<Sampler> local_parent_not_sampled;   // default always_off
};
std::unique_ptr<Sampler> MakeParentBasedSampler(std::unique_ptr<Sampler> root,
                                                ParentBasedOptions options = {});

// OTEL_TRACES_SAMPLER / OTEL_TRACES_SAMPLER_ARG; default parentbased_always_on.
// Unknown names and bad arguments are logged and ignored (the default is used).
std::unique_ptr<Sampler> SamplerFromEnvironment(const env::Defaults* defaults = nullptr);

// Threshold helpers (exposed for tests and the adaptive sampler).
namespace consistent_sampling {
inline constexpr uint64_t kMaxThreshold = uint64_t{1} << 56;
// T for a probability in [0, 1]; kMaxThreshold means "never".
uint64_t ThresholdForProbability(double probability);
// The `th` value: hex digits with trailing zeros removed ("0" for T == 0).
std::string EncodeThreshold(uint64_t threshold);
// Parses a `th` value (1-14 hex digits); nullopt if malformed.
std::optional<uint64_t> DecodeThreshold(std::string_view th);
// The randomness R: `rv` in the `ot` member of `state` if present and valid,
// else the low 56 bits of the trace id.
uint64_t Randomness(const TraceId& trace_id, const TraceState& state);
// Returns `state` with `th` in its `ot` member set (or erased when nullopt),
// keeping other `ot` sub-keys.
TraceState WithThreshold(const TraceState& state, std::optional<uint64_t> threshold);
}  // namespace consistent_sampling

}  // namespace prism::tracing
