#pragma once
// OTLP trace exporters: http/protobuf (the default), http/json and grpc,
// configured by the standard OTEL_EXPORTER_OTLP_* variables.
//
// Failures never throw into the application: they are logged (rate-limited)
// and Export returns kFailure, which the calling processor counts
// (Diagnostics().spans_failed). Retryable failures (HTTP 429/502/503/504 and connection errors;
// gRPC CANCELLED, DEADLINE_EXCEEDED, ABORTED, OUT_OF_RANGE, UNAVAILABLE,
// DATA_LOSS, and RESOURCE_EXHAUSTED carrying RetryInfo) are retried with
// exponential backoff and jitter, honouring Retry-After / RetryInfo, all
// within `timeout` per Export call. Partial success is not retried; it is
// logged and its rejected spans are added to spans_failed (the batch itself
// counts as exported). After fork() a child opens its own connection.

#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "prism/tracing/env.h"
#include "prism/tracing/processor.h"

namespace prism::tracing {

enum class OtlpProtocol { kHttpProtobuf, kHttpJson, kGrpc };
std::string_view ToString(OtlpProtocol protocol);

struct OtlpRetryPolicy {
  int max_attempts = 5;  // including the first
  std::chrono::milliseconds initial_backoff{1000};
  std::chrono::milliseconds max_backoff{5000};
  double multiplier = 1.5;
};

struct OtlpExporterOptions {
  OtlpProtocol protocol = OtlpProtocol::kHttpProtobuf;
  // Full URL for HTTP (".../v1/traces"); for gRPC "http(s)://host:port" or
  // "host:port".
  std::string endpoint = "http://localhost:4318/v1/traces";
  std::vector<std::pair<std::string, std::string>> headers;
  std::chrono::milliseconds timeout{10000};  // per Export call, retries included
  bool gzip = false;
  bool insecure = false;                // gRPC without a scheme: plaintext when true
  std::string certificate_file;         // CA bundle (PEM) to verify the server
  std::string client_key_file;          // mTLS
  std::string client_certificate_file;  // mTLS
  OtlpRetryPolicy retry;
  size_t max_request_bytes = 64 * 1024 * 1024;  // larger requests are dropped, not sent
  std::string user_agent = "prism-otlp-exporter/0.1";

  // Reads OTEL_EXPORTER_OTLP_TRACES_* (used as-is) falling back to
  // OTEL_EXPORTER_OTLP_* (the generic endpoint gets "/v1/traces" appended for
  // HTTP), then the defaults (http://localhost:4318 for HTTP,
  // http://localhost:4317 for gRPC).
  // `defaults`: values for the variables the environment leaves unset.
  static OtlpExporterOptions FromEnvironment(const env::Defaults* defaults = nullptr);
};

// Parses the OTEL_EXPORTER_OTLP_HEADERS syntax ("k1=v1,k2=v2", values
// percent-decoded). Invalid members are logged and skipped.
std::vector<std::pair<std::string, std::string>> ParseOtlpHeaders(std::string_view text);

// Parses a Retry-After value: delay-seconds or an HTTP-date (relative to `now`).
std::optional<std::chrono::milliseconds> ParseRetryAfter(
    std::string_view value,
    std::chrono::system_clock::time_point now = std::chrono::system_clock::now());

// The exporter for options.protocol.
std::unique_ptr<SpanExporter> MakeOtlpExporter(OtlpExporterOptions options);
std::unique_ptr<SpanExporter> MakeOtlpHttpExporter(OtlpExporterOptions options);
std::unique_ptr<SpanExporter> MakeOtlpGrpcExporter(OtlpExporterOptions options);

}  // namespace prism::tracing
