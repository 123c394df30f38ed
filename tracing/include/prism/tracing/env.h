#pragma once
// Reading OTEL_* style environment variables by the spec's rules: an empty
// value is unset; enum-like values are case-insensitive.

#include <chrono>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace prism::tracing::env {

// Values a program supplies for variables the process environment leaves
// unset or empty - e.g. prism-proxy's configuration file, under the
// environment (the environment wins). Passed explicitly to the readers
// below and to the *FromEnvironment functions, so a program configures the
// SDK without modifying its environment (no setenv, which is not
// thread-safe). A default goes through the same parsing as the variable.
using Defaults = std::map<std::string, std::string, std::less<>>;

// The variable's value, else its entry in `defaults` (if given).
std::optional<std::string> Get(const char* name, const Defaults* defaults = nullptr);
// Lower-cased and trimmed value.
std::optional<std::string> GetEnum(const char* name, const Defaults* defaults = nullptr);
// Invalid values are logged and nullopt returned.
std::optional<bool> GetBool(const char* name, const Defaults* defaults = nullptr);
std::optional<long long> GetInt(const char* name, const Defaults* defaults = nullptr);
std::optional<std::chrono::milliseconds> GetMillis(const char* name,
                                                   const Defaults* defaults = nullptr);

std::string Trim(std::string_view s);
std::string ToLower(std::string_view s);
// %XX escapes decoded; a '%' not followed by two hex digits is kept as is
// (OTEL_EXPORTER_OTLP_HEADERS values, gRPC's URI-form peer addresses).
std::string PercentDecode(std::string_view s);
// A comma list ("otlp, File"): items trimmed and lower-cased, empty and
// repeated ones dropped, order kept.
std::vector<std::string> SplitList(std::string_view text);

}  // namespace prism::tracing::env
