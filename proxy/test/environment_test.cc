// The configuration's tracing settings as variables: for the proxy's own
// SDK (defaults under the environment) and for each plugin's environment.
#include "environment.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <algorithm>

#include "endpoint.h"
#include "prism/tracing/exporters/otlp_exporter.h"
#include "prism/tracing/limits.h"

namespace prism::proxy {
namespace {

bool Has(const std::vector<std::string>& env, const std::string& kv) {
  return std::find(env.begin(), env.end(), kv) != env.end();
}

TEST(TracingEnvironment, TheConfigurationBecomesDefaultsAndTheTraceFileAnOverride) {
  const TracingConfig t{.service_name = {},
                        .sampler = "parentbased_traceidratio",
                        .sampler_arg = "0.5",
                        .exporters = "otlp",
                        .otlp_endpoint = "http://collector:4318",
                        .otlp_protocol = {},
                        .trace_file = {},
                        .trace_file_max_mb = "7",
                        .adaptive = {}};
  TracingEnvironment e = TracingEnvironmentFor(t, "/abs/traces.jsonl");
  EXPECT_EQ(e.overrides.at("PRISM_TRACE_FILE"), "/abs/traces.jsonl");
  EXPECT_EQ(e.defaults.at("OTEL_TRACES_SAMPLER"), "parentbased_traceidratio");
  EXPECT_EQ(e.defaults.at("OTEL_TRACES_SAMPLER_ARG"), "0.5");
  EXPECT_EQ(e.defaults.at("OTEL_TRACES_EXPORTER"), "otlp");
  EXPECT_EQ(e.defaults.at("OTEL_EXPORTER_OTLP_ENDPOINT"), "http://collector:4318");
  EXPECT_EQ(e.defaults.at("PRISM_TRACE_FILE_MAX_MB"), "7");
  EXPECT_EQ(e.defaults.count("OTEL_EXPORTER_OTLP_PROTOCOL"), 0u);
  EXPECT_EQ(e.defaults.at("OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT"), "4096");
}

TEST(TracingEnvironment, AdaptiveSamplingGivesItsArgument) {
  TracingConfig t;
  t.sampler = "prism_adaptive";
  t.adaptive = AdaptiveConfig{};
  TracingEnvironment e = TracingEnvironmentFor(t, "/t");
  EXPECT_EQ(e.defaults.at("OTEL_TRACES_SAMPLER_ARG"), t.adaptive->SamplerArg());
}

TEST(TracingEnvironment, TheSdkReadsTheDefaultsAndTheEnvironmentWins) {
  TracingConfig t;
  t.otlp_endpoint = "http://from-config:4318";
  t.otlp_protocol = "http/json";
  TracingEnvironment e = TracingEnvironmentFor(t, "/t");
  unsetenv("OTEL_EXPORTER_OTLP_ENDPOINT");
  unsetenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT");
  unsetenv("OTEL_EXPORTER_OTLP_PROTOCOL");
  unsetenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL");
  unsetenv("OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT");
  auto o = prism::tracing::OtlpExporterOptions::FromEnvironment(&e.defaults);
  EXPECT_EQ(o.endpoint, "http://from-config:4318/v1/traces");
  EXPECT_EQ(o.protocol, prism::tracing::OtlpProtocol::kHttpJson);
  EXPECT_EQ(prism::tracing::SpanLimits::FromEnvironment(&e.defaults).attribute_value_length, 4096u);
  setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://from-env:4318", 1);
  o = prism::tracing::OtlpExporterOptions::FromEnvironment(&e.defaults);
  EXPECT_EQ(o.endpoint, "http://from-env:4318/v1/traces");
  EXPECT_EQ(e.Get("OTEL_EXPORTER_OTLP_ENDPOINT").value_or(""), "http://from-env:4318");
  setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "", 1);  // empty is unset
  EXPECT_EQ(e.Get("OTEL_EXPORTER_OTLP_ENDPOINT").value_or(""), "http://from-config:4318");
  unsetenv("OTEL_EXPORTER_OTLP_ENDPOINT");
  // Without defaults the SDK reads the environment alone, as before.
  EXPECT_EQ(prism::tracing::OtlpExporterOptions::FromEnvironment().endpoint,
            "http://localhost:4318/v1/traces");
}

TEST(PluginEnvironment, InheritsAppliesTheSettingsAndNamesTheService) {
  TracingEnvironment t;
  t.overrides["PRISM_TRACE_FILE"] = "/abs/traces.jsonl";
  t.defaults["OTEL_TRACES_EXPORTER"] = "file";
  t.defaults["OTEL_TRACES_SAMPLER"] = "always_on";
  std::vector<std::string> env = PluginEnvironment(
      {"PATH=/bin", "PRISM_TRACE_FILE=rel.jsonl", "OTEL_TRACES_SAMPLER=always_off",
       "OTEL_TRACES_EXPORTER=", "PATH=/second", "junk"},
      t, "prism-plugin-sqlite", std::chrono::milliseconds(250));
  EXPECT_TRUE(Has(env, "PATH=/bin"));
  EXPECT_FALSE(Has(env, "PATH=/second")) << "a repeated name keeps its first value";
  EXPECT_TRUE(Has(env, "PRISM_TRACE_FILE=/abs/traces.jsonl")) << "the override replaces";
  EXPECT_TRUE(Has(env, "OTEL_TRACES_SAMPLER=always_off")) << "the environment wins";
  EXPECT_TRUE(Has(env, "OTEL_TRACES_EXPORTER=file")) << "an empty value counts as unset";
  EXPECT_TRUE(Has(env, "OTEL_SERVICE_NAME=prism-plugin-sqlite"));
  EXPECT_FALSE(Has(env, "junk"));
  for (const auto& kv : env) EXPECT_EQ(kv.find("slow_ms"), std::string::npos) << kv;
}

TEST(PluginEnvironment, AdaptiveSamplingAppendsTheNamespacesThreshold) {
  TracingEnvironment t;
  t.defaults["OTEL_TRACES_SAMPLER"] = "prism_adaptive";
  t.defaults["OTEL_TRACES_SAMPLER_ARG"] = "ratio=0.01,slow_ms=100";
  auto env = PluginEnvironment({"OTEL_SERVICE_NAME=mine"}, t, "p", std::chrono::milliseconds(7));
  EXPECT_TRUE(Has(env, "OTEL_TRACES_SAMPLER_ARG=ratio=0.01,slow_ms=100,slow_ms=7"));
  EXPECT_TRUE(Has(env, "OTEL_SERVICE_NAME=mine"));
  env = PluginEnvironment({}, t, "p", std::nullopt);
  EXPECT_TRUE(Has(env, "OTEL_TRACES_SAMPLER_ARG=ratio=0.01,slow_ms=100"));
}

TEST(HealthResponse, OnlyStatusServingIsServing) {
  EXPECT_TRUE(IsServingResponse(std::string("\x08\x01", 2)));
  EXPECT_FALSE(IsServingResponse(""));                                  // UNKNOWN
  EXPECT_FALSE(IsServingResponse(std::string("\x08\x02", 2)));          // NOT_SERVING
  EXPECT_FALSE(IsServingResponse(std::string("\x08\x01\x08\x02", 4)));  // the last wins
  EXPECT_TRUE(IsServingResponse(std::string("\x12\x01\x08\x08\x01", 5)))
      << "an unknown field before status (whose bytes hold 0x08) is skipped";
  EXPECT_FALSE(IsServingResponse(std::string("\x12\x05\x08\x01", 4)));  // truncated
  EXPECT_FALSE(IsServingResponse(std::string("\x0a\x01\x01", 3)));      // status not a varint
}

}  // namespace
}  // namespace prism::proxy
