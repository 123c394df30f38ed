#include <ctime>

#include "prism/tracing/diagnostics.h"
#include "prism/tracing/env.h"
#include "prism/tracing/exporters/otlp_exporter.h"

namespace prism::tracing {
namespace {

std::optional<std::string> SignalOrGeneric(const char* suffix, const env::Defaults* defaults,
                                           bool as_enum = false) {
  std::string signal = std::string("OTEL_EXPORTER_OTLP_TRACES_") + suffix;
  std::string generic = std::string("OTEL_EXPORTER_OTLP_") + suffix;
  if (as_enum) {
    if (auto v = env::GetEnum(signal.c_str(), defaults)) return v;
    return env::GetEnum(generic.c_str(), defaults);
  }
  if (auto v = env::Get(signal.c_str(), defaults)) return v;
  return env::Get(generic.c_str(), defaults);
}

}  // namespace

std::string_view ToString(OtlpProtocol protocol) {
  switch (protocol) {
    case OtlpProtocol::kHttpProtobuf:
      return "http/protobuf";
    case OtlpProtocol::kHttpJson:
      return "http/json";
    case OtlpProtocol::kGrpc:
      return "grpc";
  }
  return "http/protobuf";
}

std::vector<std::pair<std::string, std::string>> ParseOtlpHeaders(std::string_view text) {
  std::vector<std::pair<std::string, std::string>> out;
  size_t start = 0;
  while (start <= text.size()) {
    size_t comma = text.find(',', start);
    if (comma == std::string_view::npos) comma = text.size();
    std::string_view member = text.substr(start, comma - start);
    start = comma + 1;
    if (env::Trim(member).empty()) continue;
    size_t eq = member.find('=');
    std::string key = eq == std::string_view::npos ? "" : env::Trim(member.substr(0, eq));
    if (key.empty()) {
      internal::Log(
          internal::LogLevel::kWarn,
          "OTEL_EXPORTER_OTLP_HEADERS: ignoring invalid member '" + std::string(member) + "'");
      continue;
    }
    out.emplace_back(env::PercentDecode(key), env::PercentDecode(env::Trim(member.substr(eq + 1))));
  }
  return out;
}

std::optional<std::chrono::milliseconds> ParseRetryAfter(
    std::string_view value, std::chrono::system_clock::time_point now) {
  std::string v = env::Trim(value);
  if (v.empty()) return std::nullopt;
  if (v.find_first_not_of("0123456789") == std::string::npos) {
    if (v.size() > 9) return std::nullopt;
    return std::chrono::seconds(std::stoll(v));
  }
  // IMF-fixdate, e.g. "Sun, 06 Nov 1994 08:49:37 GMT".
  std::tm tm{};
  const char* end = strptime(v.c_str(), "%a, %d %b %Y %H:%M:%S GMT", &tm);
  if (end == nullptr || *end != '\0') return std::nullopt;
  auto at = std::chrono::system_clock::from_time_t(timegm(&tm));
  if (at <= now) return std::chrono::milliseconds(0);
  return std::chrono::duration_cast<std::chrono::milliseconds>(at - now);
}

OtlpExporterOptions OtlpExporterOptions::FromEnvironment(const env::Defaults* defaults) {
  OtlpExporterOptions o;
  if (auto p = SignalOrGeneric("PROTOCOL", defaults, true)) {
    if (*p == "http/protobuf") {
      o.protocol = OtlpProtocol::kHttpProtobuf;
    } else if (*p == "http/json") {
      o.protocol = OtlpProtocol::kHttpJson;
    } else if (*p == "grpc") {
      o.protocol = OtlpProtocol::kGrpc;
    } else {
      internal::Log(internal::LogLevel::kWarn,
                    "OTEL_EXPORTER_OTLP_PROTOCOL=" + *p + " is not supported; using http/protobuf");
    }
  }
  const bool grpc = o.protocol == OtlpProtocol::kGrpc;
  if (auto e = env::Get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", defaults)) {
    o.endpoint = env::Trim(*e);  // used as-is
  } else if (auto g = env::Get("OTEL_EXPORTER_OTLP_ENDPOINT", defaults)) {
    std::string base = env::Trim(*g);
    if (grpc) {
      o.endpoint = base;
    } else {
      if (base.empty() || base.back() != '/') base.push_back('/');
      o.endpoint = base + "v1/traces";
    }
  } else {
    o.endpoint = grpc ? "http://localhost:4317" : "http://localhost:4318/v1/traces";
  }
  if (auto h = SignalOrGeneric("HEADERS", defaults)) o.headers = ParseOtlpHeaders(*h);
  {
    std::optional<std::chrono::milliseconds> t =
        env::GetMillis("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", defaults);
    if (!t) t = env::GetMillis("OTEL_EXPORTER_OTLP_TIMEOUT", defaults);
    if (t) o.timeout = *t;
  }
  if (auto c = SignalOrGeneric("COMPRESSION", defaults, true)) {
    if (*c == "gzip") {
      o.gzip = true;
    } else if (*c == "none") {
      o.gzip = false;
    } else {
      internal::Log(internal::LogLevel::kWarn,
                    "OTEL_EXPORTER_OTLP_COMPRESSION=" + *c + " is not supported; using none");
    }
  }
  {
    std::optional<bool> insecure = env::GetBool("OTEL_EXPORTER_OTLP_TRACES_INSECURE", defaults);
    if (!insecure) insecure = env::GetBool("OTEL_EXPORTER_OTLP_INSECURE", defaults);
    if (insecure) o.insecure = *insecure;
  }
  if (auto v = SignalOrGeneric("CERTIFICATE", defaults)) o.certificate_file = *v;
  if (auto v = SignalOrGeneric("CLIENT_KEY", defaults)) o.client_key_file = *v;
  if (auto v = SignalOrGeneric("CLIENT_CERTIFICATE", defaults)) o.client_certificate_file = *v;
  return o;
}

std::unique_ptr<SpanExporter> MakeOtlpExporter(OtlpExporterOptions options) {
  if (options.protocol == OtlpProtocol::kGrpc) return MakeOtlpGrpcExporter(std::move(options));
  return MakeOtlpHttpExporter(std::move(options));
}

}  // namespace prism::tracing
