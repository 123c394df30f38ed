#include "prism/tracing/exporters/setup.h"

#include <algorithm>

#include "prism/tracing/adaptive.h"
#include "prism/tracing/diagnostics.h"
#include "prism/tracing/env.h"
#include "prism/tracing/exporters/batch_span_processor.h"
#include "prism/tracing/exporters/console_exporter.h"
#include "prism/tracing/exporters/file_exporter.h"
#include "prism/tracing/exporters/otlp_exporter.h"
#include "prism/tracing/global.h"

namespace prism::tracing {

std::vector<std::string> TracesExportersFromEnvironment(const ExporterDefaults& defaults) {
  const env::Defaults* d = &defaults.environment;
  if (auto v = env::Get("OTEL_TRACES_EXPORTER", d)) return env::SplitList(*v);
  auto names = env::SplitList(defaults.traces_exporter);
  if (defaults.add_otlp_when_endpoint_set &&
      (env::Get("OTEL_EXPORTER_OTLP_ENDPOINT", d) ||
       env::Get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", d)) &&
      std::find(names.begin(), names.end(), "otlp") == names.end()) {
    names.push_back("otlp");
  }
  return names;
}

std::vector<std::unique_ptr<SpanProcessor>> ProcessorsFromEnvironment(
    const ExporterDefaults& defaults) {
  std::vector<std::unique_ptr<SpanProcessor>> processors;
  auto names = TracesExportersFromEnvironment(defaults);
  if (std::find(names.begin(), names.end(), "none") != names.end()) {
    if (names.size() > 1) {
      internal::Log(internal::LogLevel::kWarn,
                    "OTEL_TRACES_EXPORTER lists 'none' with other exporters; exporting nothing");
    }
    return processors;
  }
  for (const auto& name : names) {
    if (name == "otlp") {
      processors.push_back(std::make_unique<BatchSpanProcessor>(
          MakeOtlpExporter(OtlpExporterOptions::FromEnvironment(&defaults.environment)),
          BatchSpanProcessorOptions::FromEnvironment()));
    } else if (name == "file") {
      FileExporterOptions fo;
      fo.path = ResolveTraceFilePath(defaults.trace_file);
      fo.environment = &defaults.environment;
      processors.push_back(std::make_unique<BatchSpanProcessor>(
          MakeFileExporter(fo), BatchSpanProcessorOptions::FromEnvironment()));
    } else if (name == "console") {
      processors.push_back(std::make_unique<SimpleSpanProcessor>(MakeConsoleExporter()));
    } else {
      internal::Log(internal::LogLevel::kWarn,
                    "OTEL_TRACES_EXPORTER: unknown exporter '" + name + "' ignored");
    }
  }
  return processors;
}

std::shared_ptr<TracerProvider> InitTracingFromEnvironment(std::string_view default_service_name,
                                                           ExporterDefaults defaults) {
  TracerProviderOptions options;
  if (SdkDisabledByEnvironment()) {
    options.disabled = true;
  } else {
    options.resource = Resource::FromEnvironment(default_service_name);
    if (defaults.adaptive) {
      options.adaptive = std::make_shared<AdaptiveSampling>(*defaults.adaptive);
    } else if (auto adaptive =
                   AdaptiveOptionsFromEnvironment(defaults.adaptive_role, &defaults.environment)) {
      options.adaptive = std::make_shared<AdaptiveSampling>(std::move(*adaptive));
    } else {
      options.sampler = SamplerFromEnvironment(&defaults.environment);
    }
    options.limits = SpanLimits::FromEnvironment(&defaults.environment);
    options.processors = ProcessorsFromEnvironment(defaults);
    options.log_diagnostics_at_shutdown = defaults.log_diagnostics_at_shutdown;
  }
  auto provider = std::make_shared<TracerProvider>(std::move(options));
  if (defaults.set_global) SetGlobalTracerProvider(provider);
  return provider;
}

}  // namespace prism::tracing
