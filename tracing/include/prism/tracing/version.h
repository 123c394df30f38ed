#pragma once
// The SDK's name and version as reported in telemetry.sdk.* resource attributes.

#include <string_view>

namespace prism::tracing {
inline constexpr std::string_view kSdkName = "prism-tracing";
inline constexpr std::string_view kSdkVersion = "0.1.0";
}  // namespace prism::tracing
