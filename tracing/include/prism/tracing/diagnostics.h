#pragma once
// Self-diagnostics: process-wide counters of the SDK's own work, and the
// rate-limited log that export errors go to.

#include <atomic>
#include <cstdint>
#include <string>

namespace prism::tracing {

struct DiagnosticsSnapshot {
  uint64_t spans_started = 0;
  uint64_t spans_ended = 0;
  uint64_t spans_dropped = 0;   // not exported: queue full, shut down, too large
  uint64_t spans_exported = 0;  // accepted by an exporter's receiver
  uint64_t spans_failed = 0;    // export attempted and failed (or rejected)
  std::string ToString() const;
};

DiagnosticsSnapshot Diagnostics();

namespace internal {
struct Counters {
  alignas(64) std::atomic<uint64_t> spans_started{0};
  alignas(64) std::atomic<uint64_t> spans_ended{0};
  alignas(64) std::atomic<uint64_t> spans_dropped{0};
  std::atomic<uint64_t> spans_exported{0};
  std::atomic<uint64_t> spans_failed{0};
};
Counters& GlobalCounters();

enum class LogLevel { kDebug = 0, kInfo = 1, kWarn = 2, kError = 3, kNone = 4 };
// Writes "prism-tracing <level>: message" to stderr, honouring OTEL_LOG_LEVEL
// (default info) and at most 10 messages a second per process; the number
// suppressed is reported with the next message that gets through.
void Log(LogLevel level, const std::string& message);
}  // namespace internal

}  // namespace prism::tracing
