#pragma once
// Reading OTEL_* style environment variables by the spec's rules: an empty
// value is unset; enum-like values are case-insensitive.

#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace prism::tracing::env {

std::optional<std::string> Get(const char* name);
// Lower-cased and trimmed value.
std::optional<std::string> GetEnum(const char* name);
// Invalid values are logged and nullopt returned.
std::optional<bool> GetBool(const char* name);
std::optional<long long> GetInt(const char* name);
std::optional<std::chrono::milliseconds> GetMillis(const char* name);

std::string Trim(std::string_view s);
std::string ToLower(std::string_view s);
// A comma list ("otlp, File"): items trimmed and lower-cased, empty and
// repeated ones dropped, order kept.
std::vector<std::string> SplitList(std::string_view text);

}  // namespace prism::tracing::env
