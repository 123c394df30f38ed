#pragma once
// Plugin logs: one line each on stderr, with the trace and span ids of the
// span they were written in, so a log line leads to its trace:
//   2025-01-02T03:04:05.678Z prism-plugin-sqlite INFO serving on unix:///x.sock
//   2025-01-02T03:04:05.912Z prism-plugin-sqlite WARN slow query trace_id=4bf9... span_id=00f0...

#include <string_view>

#include "prism/tracing/span_context.h"

namespace prism::plugin {

enum class LogLevel { kDebug, kInfo, kWarn, kError };

// The name printed in each line (Serve sets "prism-plugin-<name>").
void SetLogName(std::string_view name);
// Minimum level printed (default info; PRISM_LOG_LEVEL=debug|info|warn|error).
void SetLogLevel(LogLevel level);

// Uses the thread's current span context (none printed when invalid).
void Log(LogLevel level, std::string_view message);
// For callback handlers: the span context passed explicitly.
void Log(LogLevel level, const prism::tracing::SpanContext& span, std::string_view message);

}  // namespace prism::plugin
