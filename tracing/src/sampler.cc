#include "prism/tracing/sampler.h"

#include <atomic>
#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "prism/tracing/diagnostics.h"
#include "prism/tracing/env.h"

namespace prism::tracing {

namespace consistent_sampling {
namespace {
constexpr std::string_view kOtKey = "ot";

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

// Finds sub-key `key` ("th", "rv") in an `ot` value "k1:v1;k2:v2".
std::optional<std::string_view> OtField(std::string_view ot, std::string_view key) {
  size_t pos = 0;
  while (pos <= ot.size()) {
    size_t end = ot.find(';', pos);
    if (end == std::string_view::npos) end = ot.size();
    std::string_view field = ot.substr(pos, end - pos);
    if (field.size() > key.size() && field.substr(0, key.size()) == key &&
        field[key.size()] == ':') {
      return field.substr(key.size() + 1);
    }
    pos = end + 1;
  }
  return std::nullopt;
}
}  // namespace

uint64_t ThresholdForProbability(double probability) {
  if (!(probability > 0)) return kMaxThreshold;  // also NaN
  if (probability >= 1) return 0;
  // p * 2^56 is exact in binary floating point; rounding matches the
  // OpenTelemetry Collector's pkg/sampling and Java's consistent samplers.
  double scaled = std::round(std::ldexp(probability, 56));
  if (scaled < 1) return kMaxThreshold - 1;  // the smallest non-zero probability
  return kMaxThreshold - static_cast<uint64_t>(scaled);
}

std::string EncodeThreshold(uint64_t threshold) {
  if (threshold == 0) return "0";
  static constexpr char kHex[] = "0123456789abcdef";
  std::string s(14, '0');
  for (int i = 13; i >= 0; --i, threshold >>= 4) s[i] = kHex[threshold & 0xf];
  while (s.size() > 1 && s.back() == '0') s.pop_back();
  return s;
}

std::optional<uint64_t> DecodeThreshold(std::string_view th) {
  if (th.empty() || th.size() > 14) return std::nullopt;
  uint64_t v = 0;
  for (char c : th) {
    int d = HexValue(c);
    if (d < 0) return std::nullopt;
    v = (v << 4) | static_cast<uint64_t>(d);
  }
  return v << (4 * (14 - th.size()));
}

uint64_t Randomness(const TraceId& trace_id, const TraceState& state) {
  if (!state.empty()) {
    if (auto ot = state.Get(kOtKey)) {
      if (auto rv = OtField(*ot, "rv"); rv && rv->size() == 14) {
        if (auto v = DecodeThreshold(*rv)) return *v;
      }
    }
  }
  return trace_id.Low56();
}

TraceState WithThreshold(const TraceState& state, std::optional<uint64_t> threshold) {
  std::string ot;
  if (threshold) ot = "th:" + EncodeThreshold(*threshold);
  if (auto existing = state.Get(kOtKey)) {
    size_t pos = 0;
    while (pos <= existing->size()) {
      size_t end = existing->find(';', pos);
      if (end == std::string_view::npos) end = existing->size();
      std::string_view field = existing->substr(pos, end - pos);
      if (!field.empty() && field.substr(0, 3) != "th:") {
        if (!ot.empty()) ot.push_back(';');
        ot.append(field);
      }
      pos = end + 1;
    }
  }
  if (ot.empty()) return state.Get(kOtKey) ? state.Erase(kOtKey) : state;
  return state.Set(kOtKey, ot);
}
}  // namespace consistent_sampling

namespace {

class AlwaysOnSampler : public Sampler {
 public:
  SamplingResult ShouldSample(const SamplingParameters&) const override {
    return {SamplingDecision::kRecordAndSample, {}, std::nullopt};
  }
  std::string Description() const override { return "AlwaysOnSampler"; }
  bool ReadsAttributes() const override { return false; }
};

class AlwaysOffSampler : public Sampler {
 public:
  SamplingResult ShouldSample(const SamplingParameters&) const override {
    return {SamplingDecision::kDrop, {}, std::nullopt};
  }
  std::string Description() const override { return "AlwaysOffSampler"; }
  bool ReadsAttributes() const override { return false; }
};

class TraceIdRatioSampler : public Sampler {
 public:
  explicit TraceIdRatioSampler(double ratio)
      : ratio_(ratio), threshold_(consistent_sampling::ThresholdForProbability(ratio)) {}

  SamplingResult ShouldSample(const SamplingParameters& p) const override {
    namespace cs = consistent_sampling;
    const TraceState& parent_state = p.parent.trace_state();
    if (p.parent.IsValid() && !p.parent.IsRandom() && !warned_.exchange(true)) {
      internal::Log(internal::LogLevel::kWarn,
                    "traceidratio sampler: parent trace lacks the W3C random flag; presuming "
                    "its trace id is random anyway");
    }
    const bool keep =
        threshold_ < cs::kMaxThreshold && cs::Randomness(p.trace_id, parent_state) >= threshold_;
    SamplingResult r;
    if (keep) {
      r.decision = SamplingDecision::kRecordAndSample;
      r.trace_state = cs::WithThreshold(parent_state, threshold_);
    } else {
      r.decision = SamplingDecision::kDrop;
      // An unsampled span must not claim a threshold it failed.
      if (!parent_state.empty() && parent_state.Get("ot")) {
        r.trace_state = cs::WithThreshold(parent_state, std::nullopt);
      }
    }
    return r;
  }

  std::string Description() const override {
    char buf[64];
    std::snprintf(buf, sizeof(buf), "TraceIdRatioBased{%.6f}", ratio_);
    return buf;
  }
  bool ReadsAttributes() const override { return false; }

 private:
  double ratio_;
  uint64_t threshold_;
  mutable std::atomic<bool> warned_{false};
};

class ParentBasedSampler : public Sampler {
 public:
  ParentBasedSampler(std::unique_ptr<Sampler> root, ParentBasedOptions o)
      : root_(std::move(root)),
        remote_sampled_(o.remote_parent_sampled ? std::move(o.remote_parent_sampled)
                                                : MakeAlwaysOnSampler()),
        remote_not_sampled_(o.remote_parent_not_sampled ? std::move(o.remote_parent_not_sampled)
                                                        : MakeAlwaysOffSampler()),
        local_sampled_(o.local_parent_sampled ? std::move(o.local_parent_sampled)
                                              : MakeAlwaysOnSampler()),
        local_not_sampled_(o.local_parent_not_sampled ? std::move(o.local_parent_not_sampled)
                                                      : MakeAlwaysOffSampler()) {}

  SamplingResult ShouldSample(const SamplingParameters& p) const override {
    if (!p.parent.IsValid()) return root_->ShouldSample(p);
    if (p.parent.IsRemote()) {
      return (p.parent.IsSampled() ? remote_sampled_ : remote_not_sampled_)->ShouldSample(p);
    }
    return (p.parent.IsSampled() ? local_sampled_ : local_not_sampled_)->ShouldSample(p);
  }

  std::string Description() const override {
    return "ParentBased{root:" + root_->Description() +
           ",remoteParentSampled:" + remote_sampled_->Description() +
           ",remoteParentNotSampled:" + remote_not_sampled_->Description() +
           ",localParentSampled:" + local_sampled_->Description() +
           ",localParentNotSampled:" + local_not_sampled_->Description() + "}";
  }
  bool ReadsAttributes() const override {
    return root_->ReadsAttributes() || remote_sampled_->ReadsAttributes() ||
           remote_not_sampled_->ReadsAttributes() || local_sampled_->ReadsAttributes() ||
           local_not_sampled_->ReadsAttributes();
  }

 private:
  std::unique_ptr<Sampler> root_, remote_sampled_, remote_not_sampled_, local_sampled_,
      local_not_sampled_;
};

double RatioFromEnvironment(const env::Defaults* defaults) {
  auto arg = env::Get("OTEL_TRACES_SAMPLER_ARG", defaults);
  if (!arg) return 1.0;
  std::string t = env::Trim(*arg);
  char* end = nullptr;
  double v = std::strtod(t.c_str(), &end);
  if (t.empty() || *end != '\0' || !(v >= 0.0 && v <= 1.0)) {
    internal::Log(internal::LogLevel::kWarn,
                  "OTEL_TRACES_SAMPLER_ARG=" + *arg + " is not a ratio in [0, 1]; using 1.0");
    return 1.0;
  }
  return v;
}

}  // namespace

std::unique_ptr<Sampler> MakeAlwaysOnSampler() { return std::make_unique<AlwaysOnSampler>(); }
std::unique_ptr<Sampler> MakeAlwaysOffSampler() { return std::make_unique<AlwaysOffSampler>(); }
std::unique_ptr<Sampler> MakeTraceIdRatioSampler(double ratio) {
  if (!(ratio >= 0.0)) ratio = 0.0;
  if (ratio > 1.0) ratio = 1.0;
  return std::make_unique<TraceIdRatioSampler>(ratio);
}
std::unique_ptr<Sampler> MakeParentBasedSampler(std::unique_ptr<Sampler> root,
                                                ParentBasedOptions options) {
  return std::make_unique<ParentBasedSampler>(std::move(root), std::move(options));
}

std::unique_ptr<Sampler> SamplerFromEnvironment(const env::Defaults* defaults) {
  auto name = env::GetEnum("OTEL_TRACES_SAMPLER", defaults);
  if (!name || *name == "parentbased_always_on") {
    return MakeParentBasedSampler(MakeAlwaysOnSampler());
  }
  if (*name == "always_on") return MakeAlwaysOnSampler();
  if (*name == "always_off") return MakeAlwaysOffSampler();
  if (*name == "traceidratio") return MakeTraceIdRatioSampler(RatioFromEnvironment(defaults));
  if (*name == "parentbased_always_off") return MakeParentBasedSampler(MakeAlwaysOffSampler());
  if (*name == "parentbased_traceidratio") {
    return MakeParentBasedSampler(MakeTraceIdRatioSampler(RatioFromEnvironment(defaults)));
  }
  internal::Log(internal::LogLevel::kWarn,
                "OTEL_TRACES_SAMPLER=" + *name + " is not supported; using parentbased_always_on");
  return MakeParentBasedSampler(MakeAlwaysOnSampler());
}

}  // namespace prism::tracing
