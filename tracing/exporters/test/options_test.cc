#include <gtest/gtest.h>

#include "exporters_test_util.h"
#include "prism/tracing/exporters/otlp_exporter.h"
#include "prism/tracing/exporters/setup.h"

namespace prism::tracing {
namespace {

using namespace std::chrono_literals;
using testing::ScopedEnv;

// Clears every variable the OTLP options read.
struct CleanOtlpEnv {
  std::vector<std::unique_ptr<ScopedEnv>> envs;
  CleanOtlpEnv() {
    for (const char* s : {"ENDPOINT", "PROTOCOL", "HEADERS", "TIMEOUT", "COMPRESSION", "INSECURE",
                          "CERTIFICATE", "CLIENT_KEY", "CLIENT_CERTIFICATE"}) {
      names.push_back(std::string("OTEL_EXPORTER_OTLP_") + s);
      names.push_back(std::string("OTEL_EXPORTER_OTLP_TRACES_") + s);
    }
    for (auto& n : names) envs.push_back(std::make_unique<ScopedEnv>(n.c_str(), nullptr));
  }
  std::vector<std::string> names;
};

TEST(OtlpOptionsTest, Defaults) {
  CleanOtlpEnv clean;
  auto o = OtlpExporterOptions::FromEnvironment();
  EXPECT_EQ(o.protocol, OtlpProtocol::kHttpProtobuf);
  EXPECT_EQ(o.endpoint, "http://localhost:4318/v1/traces");
  EXPECT_EQ(o.timeout, 10000ms);
  EXPECT_FALSE(o.gzip);
  EXPECT_TRUE(o.headers.empty());
}

TEST(OtlpOptionsTest, GrpcDefaultEndpoint) {
  CleanOtlpEnv clean;
  ScopedEnv p("OTEL_EXPORTER_OTLP_PROTOCOL", "GRPC");
  auto o = OtlpExporterOptions::FromEnvironment();
  EXPECT_EQ(o.protocol, OtlpProtocol::kGrpc);
  EXPECT_EQ(o.endpoint, "http://localhost:4317");
}

TEST(OtlpOptionsTest, GenericEndpointGetsSignalPath) {
  CleanOtlpEnv clean;
  {
    ScopedEnv e("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318");
    EXPECT_EQ(OtlpExporterOptions::FromEnvironment().endpoint, "http://collector:4318/v1/traces");
  }
  {
    ScopedEnv e("OTEL_EXPORTER_OTLP_ENDPOINT", "https://collector:4318/base/");
    EXPECT_EQ(OtlpExporterOptions::FromEnvironment().endpoint,
              "https://collector:4318/base/v1/traces");
  }
}

TEST(OtlpOptionsTest, SignalSpecificWinsAndIsUsedAsIs) {
  CleanOtlpEnv clean;
  ScopedEnv e("OTEL_EXPORTER_OTLP_ENDPOINT", "http://generic:4318");
  ScopedEnv t("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://traces:9999/custom");
  ScopedEnv p("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc");
  ScopedEnv tp("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "http/json");
  ScopedEnv h("OTEL_EXPORTER_OTLP_HEADERS", "a=1");
  ScopedEnv th("OTEL_EXPORTER_OTLP_TRACES_HEADERS", "api-key=se%2Ccret, x = y ");
  ScopedEnv to("OTEL_EXPORTER_OTLP_TIMEOUT", "5000");
  ScopedEnv tto("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "1234");
  ScopedEnv c("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip");
  ScopedEnv cert("OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE", "/ca.pem");
  ScopedEnv key("OTEL_EXPORTER_OTLP_CLIENT_KEY", "/key.pem");
  ScopedEnv cc("OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE", "/cert.pem");
  auto o = OtlpExporterOptions::FromEnvironment();
  EXPECT_EQ(o.endpoint, "http://traces:9999/custom");
  EXPECT_EQ(o.protocol, OtlpProtocol::kHttpJson);
  ASSERT_EQ(o.headers.size(), 2u);
  EXPECT_EQ(o.headers[0].first, "api-key");
  EXPECT_EQ(o.headers[0].second, "se,cret");
  EXPECT_EQ(o.headers[1].first, "x");
  EXPECT_EQ(o.headers[1].second, "y");
  EXPECT_EQ(o.timeout, 1234ms);
  EXPECT_TRUE(o.gzip);
  EXPECT_EQ(o.certificate_file, "/ca.pem");
  EXPECT_EQ(o.client_key_file, "/key.pem");
  EXPECT_EQ(o.client_certificate_file, "/cert.pem");
}

TEST(OtlpOptionsTest, GrpcGenericEndpointIsNotSuffixed) {
  CleanOtlpEnv clean;
  ScopedEnv p("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc");
  ScopedEnv e("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4317");
  EXPECT_EQ(OtlpExporterOptions::FromEnvironment().endpoint, "http://collector:4317");
}

TEST(OtlpOptionsTest, InvalidValuesFallBack) {
  CleanOtlpEnv clean;
  ScopedEnv p("OTEL_EXPORTER_OTLP_PROTOCOL", "carrier-pigeon");
  ScopedEnv c("OTEL_EXPORTER_OTLP_COMPRESSION", "zstd");
  ScopedEnv h("OTEL_EXPORTER_OTLP_HEADERS", "novalue,=x,ok=1");
  auto o = OtlpExporterOptions::FromEnvironment();
  EXPECT_EQ(o.protocol, OtlpProtocol::kHttpProtobuf);
  EXPECT_FALSE(o.gzip);
  ASSERT_EQ(o.headers.size(), 1u);
  EXPECT_EQ(o.headers[0].first, "ok");
}

TEST(RetryAfterTest, SecondsAndHttpDate) {
  EXPECT_EQ(ParseRetryAfter("3"), std::chrono::milliseconds(3000));
  EXPECT_EQ(ParseRetryAfter(" 0 "), std::chrono::milliseconds(0));
  auto now = std::chrono::system_clock::from_time_t(784111777);  // Sun, 06 Nov 1994 08:49:37 GMT
  EXPECT_EQ(ParseRetryAfter("Sun, 06 Nov 1994 08:49:39 GMT", now), std::chrono::milliseconds(2000));
  EXPECT_EQ(ParseRetryAfter("Sun, 06 Nov 1994 08:49:30 GMT", now), std::chrono::milliseconds(0));
  EXPECT_FALSE(ParseRetryAfter("soon"));
  EXPECT_FALSE(ParseRetryAfter(""));
}

TEST(SetupTest, TracesExporterList) {
  {
    ScopedEnv e("OTEL_TRACES_EXPORTER", nullptr);
    EXPECT_EQ(TracesExportersFromEnvironment(), std::vector<std::string>{"otlp"});
  }
  {
    ScopedEnv e("OTEL_TRACES_EXPORTER", " Console , file,console ");
    EXPECT_EQ(TracesExportersFromEnvironment(), (std::vector<std::string>{"console", "file"}));
  }
  {
    ScopedEnv e("OTEL_TRACES_EXPORTER", nullptr);
    ScopedEnv ep("OTEL_EXPORTER_OTLP_ENDPOINT", "http://x:4318");
    ExporterDefaults d;
    d.traces_exporter = "file";
    d.add_otlp_when_endpoint_set = true;
    EXPECT_EQ(TracesExportersFromEnvironment(d), (std::vector<std::string>{"file", "otlp"}));
  }
}

TEST(SetupTest, ProcessorsFromEnvironment) {
  ScopedEnv f("PRISM_TRACE_FILE", "/tmp/prism-exporters-setup-test.jsonl");
  {
    ScopedEnv e("OTEL_TRACES_EXPORTER", "none");
    EXPECT_TRUE(ProcessorsFromEnvironment().empty());
  }
  {
    ScopedEnv e("OTEL_TRACES_EXPORTER", "console,file,otlp,bogus");
    EXPECT_EQ(ProcessorsFromEnvironment().size(), 3u);
  }
}

TEST(SetupTest, DisabledSdk) {
  ScopedEnv d("OTEL_SDK_DISABLED", "TRUE");
  ExporterDefaults defaults;
  defaults.set_global = false;
  auto provider = InitTracingFromEnvironment("svc", defaults);
  EXPECT_TRUE(provider->disabled());
  EXPECT_FALSE(provider->GetTracer("x").StartSpan("s").IsRecording());
}

TEST(SetupTest, InitFromEnvironmentUsesServiceName) {
  ScopedEnv d("OTEL_SDK_DISABLED", nullptr);
  ScopedEnv s("OTEL_SERVICE_NAME", nullptr);
  ScopedEnv e("OTEL_TRACES_EXPORTER", "none");
  ExporterDefaults defaults;
  defaults.set_global = false;
  auto provider = InitTracingFromEnvironment("prism-test-service", defaults);
  ASSERT_FALSE(provider->disabled());
  auto* name = provider->resource()->Get("service.name");
  ASSERT_NE(name, nullptr);
  EXPECT_EQ(std::get<std::string>(*name), "prism-test-service");
  EXPECT_TRUE(provider->Shutdown());
}

}  // namespace
}  // namespace prism::tracing
