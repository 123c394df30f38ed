#pragma once
// The tracing part of the proxy's configuration as the OTEL_* / PRISM_*
// variables it stands for (docs/config.md, "tracing"). One map serves both
// readers, so they cannot disagree: the proxy's own SDK gets it as
// ExporterDefaults::environment (values for variables the process
// environment leaves unset), and each plugin gets it in the environment it
// is executed with (the plugin protocol, docs/plugins.md). The proxy's own
// environment is never modified (no setenv).

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "config.h"
#include "prism/tracing/env.h"

namespace prism::proxy {

// Default OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT of the proxy and its plugins:
// span attributes carry what clients send (namespaces, ids, messages).
inline constexpr int kAttributeValueLengthLimit = 4096;

struct TracingEnvironment {
  // Used where the process environment leaves a variable unset or empty:
  // the environment wins over the file.
  prism::tracing::env::Defaults defaults;
  // Replace the process environment's value: PRISM_TRACE_FILE, the trace
  // file the proxy resolved (absolute), so every plugin appends to it.
  prism::tracing::env::Defaults overrides;

  // The value in effect for `name`: override, environment, default.
  std::optional<std::string> Get(const char* name) const;
};

// `trace_file`: the resolved, absolute trace file path. `config` after
// FinalizeConfig (tracing.sampler: adaptive gives prism_adaptive and its
// argument).
TracingEnvironment TracingEnvironmentFor(const TracingConfig& config,
                                         const std::string& trace_file);

// The process environment, "NAME=value" each.
std::vector<std::string> ProcessEnvironment();

// What one plugin is executed with: `inherited` with `tracing` applied
// (overrides replace, defaults fill unset or empty names), then
// OTEL_SERVICE_NAME=<plugin_name> unless set, and - with adaptive sampling -
// the namespace's own `slow` threshold appended to OTEL_TRACES_SAMPLER_ARG
// (a later key wins in the argument).
std::vector<std::string> PluginEnvironment(const std::vector<std::string>& inherited,
                                           const TracingEnvironment& tracing,
                                           const std::string& plugin_name,
                                           std::optional<std::chrono::milliseconds> slow);

}  // namespace prism::proxy
