#include "environment.h"

#include <string_view>

extern char** environ;

namespace prism::proxy {
namespace env = prism::tracing::env;

std::optional<std::string> TracingEnvironment::Get(const char* name) const {
  if (auto it = overrides.find(name); it != overrides.end()) return it->second;
  return env::Get(name, &defaults);
}

TracingEnvironment TracingEnvironmentFor(const TracingConfig& config,
                                         const std::string& trace_file) {
  TracingEnvironment t;
  t.overrides["PRISM_TRACE_FILE"] = trace_file;
  auto put = [&](const char* name, const std::optional<std::string>& value) {
    if (value) t.defaults[name] = *value;
  };
  put("OTEL_TRACES_SAMPLER", config.sampler);
  put("OTEL_TRACES_SAMPLER_ARG", config.adaptive
                                     ? std::optional<std::string>(config.adaptive->SamplerArg())
                                     : config.sampler_arg);
  put("PRISM_TRACE_FILE_MAX_MB", config.trace_file_max_mb);
  put("OTEL_TRACES_EXPORTER", config.exporters);
  put("OTEL_EXPORTER_OTLP_ENDPOINT", config.otlp_endpoint);
  put("OTEL_EXPORTER_OTLP_PROTOCOL", config.otlp_protocol);
  // A bounded attribute length unless the user chose one (the SDK's default
  // is none); the span-specific variable wins over the general one.
  if (!env::Get("OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT")) {
    t.defaults["OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT"] = std::to_string(kAttributeValueLengthLimit);
  }
  return t;
}

std::vector<std::string> ProcessEnvironment() {
  std::vector<std::string> out;
  for (char** e = environ; e && *e; ++e) out.emplace_back(*e);
  return out;
}

std::vector<std::string> PluginEnvironment(const std::vector<std::string>& inherited,
                                           const TracingEnvironment& tracing,
                                           const std::string& plugin_name,
                                           std::optional<std::chrono::milliseconds> slow) {
  // Every variable once: the inherited ones in their order, a name that
  // appears twice keeps its first value (as getenv would see it).
  std::vector<std::pair<std::string, std::string>> vars;
  auto find = [&](std::string_view name) {
    for (auto& v : vars) {
      if (v.first == name) return &v;
    }
    return static_cast<std::pair<std::string, std::string>*>(nullptr);
  };
  for (const auto& kv : inherited) {
    size_t eq = kv.find('=');
    if (eq == std::string::npos || eq == 0) continue;
    std::string name = kv.substr(0, eq);
    if (!find(name)) vars.emplace_back(std::move(name), kv.substr(eq + 1));
  }
  auto set = [&](const std::string& name, const std::string& value, bool replace) {
    auto* v = find(name);
    if (!v) {
      vars.emplace_back(name, value);
    } else if (replace || v->second.empty()) {
      v->second = value;
    }
  };
  for (const auto& [name, value] : tracing.overrides) set(name, value, true);
  for (const auto& [name, value] : tracing.defaults) set(name, value, false);
  set("OTEL_SERVICE_NAME", plugin_name, false);
  auto* sampler = find("OTEL_TRACES_SAMPLER");
  const bool adaptive = sampler && env::ToLower(env::Trim(sampler->second)) == "prism_adaptive";
  if (adaptive && slow) {
    if (auto* arg = find("OTEL_TRACES_SAMPLER_ARG")) {
      arg->second +=
          (arg->second.empty() ? "" : ",") + ("slow_ms=" + std::to_string(slow->count()));
    }
  }
  std::vector<std::string> out;
  out.reserve(vars.size());
  for (auto& [name, value] : vars) out.push_back(name + "=" + value);
  return out;
}

}  // namespace prism::proxy
