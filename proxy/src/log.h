#pragma once
// Plain stderr logging for the proxy: "prism-proxy: <time> <level> <message>".
// Never pass tokens here.

#include <string_view>

namespace prism::proxy {

enum class LogLevel { kInfo, kWarn, kError };
void Log(LogLevel level, std::string_view message);
inline void LogInfo(std::string_view m) { Log(LogLevel::kInfo, m); }
inline void LogWarn(std::string_view m) { Log(LogLevel::kWarn, m); }
inline void LogError(std::string_view m) { Log(LogLevel::kError, m); }

}  // namespace prism::proxy
