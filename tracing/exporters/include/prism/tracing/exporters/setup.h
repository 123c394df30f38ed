#pragma once
// Tracing set up from the environment: the one call the proxy, the plugins
// and the examples make.
//
//   auto provider = prism::tracing::InitTracingFromEnvironment("prism-proxy");
//   ...
//   provider->Shutdown();  // or let it go out of scope
//
// OTEL_TRACES_EXPORTER (comma list, default ExporterDefaults::traces_exporter):
//   otlp    -> BatchSpanProcessor(OTLP exporter from OTEL_EXPORTER_OTLP_*)
//   file    -> BatchSpanProcessor(trace file exporter, at
//              ResolveTraceFilePath(ExporterDefaults::trace_file))
//   console -> SimpleSpanProcessor(console exporter, stderr)
//   none    -> nothing
// Unknown names are logged and skipped. Batch processors read OTEL_BSP_*.
// Resource: Resource::FromEnvironment(default_service_name); sampler:
// ExporterDefaults::adaptive if set, else OTEL_TRACES_SAMPLER=prism_adaptive
// (AdaptiveOptionsFromEnvironment, tracing/adaptive.h), else
// SamplerFromEnvironment(); limits: SpanLimits::FromEnvironment();
// OTEL_SDK_DISABLED=true gives a disabled provider.

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "prism/tracing/adaptive.h"
#include "prism/tracing/processor.h"
#include "prism/tracing/tracer.h"

namespace prism::tracing {

struct ExporterDefaults {
  // Used when OTEL_TRACES_EXPORTER is unset.
  std::string traces_exporter = "otlp";
  // When true and OTEL_TRACES_EXPORTER is unset, "otlp" is added to
  // traces_exporter if OTEL_EXPORTER_OTLP_ENDPOINT or
  // OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is set (the proxy's embedded default:
  // "file", plus OTLP when an endpoint is configured).
  bool add_otlp_when_endpoint_set = false;
  // Trace file path when PRISM_TRACE_FILE is unset (empty: the data
  // directory's traces.jsonl); see ResolveTraceFilePath in file_exporter.h.
  std::string trace_file;
  // Install the provider as the global one (SetGlobalTracerProvider).
  bool set_global = true;
  // Log the self-diagnostics counters when the provider shuts down.
  bool log_diagnostics_at_shutdown = true;
  // Adaptive sampling set up by the program itself (the proxy, from its
  // configuration); wins over OTEL_TRACES_SAMPLER.
  std::optional<AdaptiveOptions> adaptive;
  // The role of OTEL_TRACES_SAMPLER=prism_adaptive when its argument names
  // none: plugins are downstream of the proxy.
  AdaptiveOptions::Role adaptive_role = AdaptiveOptions::Role::kHead;
  // Values for the OTEL_* / PRISM_* variables above that the environment
  // leaves unset (env.h): a program's own configuration, under the
  // environment, without setenv. Read wherever the variable is.
  env::Defaults environment;
};

// The exporter names in effect (after defaults and dedup), e.g. {"otlp"}.
std::vector<std::string> TracesExportersFromEnvironment(const ExporterDefaults& defaults = {});

std::vector<std::unique_ptr<SpanProcessor>> ProcessorsFromEnvironment(
    const ExporterDefaults& defaults = {});

std::shared_ptr<TracerProvider> InitTracingFromEnvironment(std::string_view default_service_name,
                                                           ExporterDefaults defaults = {});

}  // namespace prism::tracing
