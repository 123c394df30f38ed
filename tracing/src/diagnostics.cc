#include "prism/tracing/diagnostics.h"

#include <chrono>
#include <cstdio>
#include <mutex>

#include "prism/tracing/env.h"

namespace prism::tracing {

namespace internal {
Counters& GlobalCounters() {
  static Counters* counters = new Counters();  // never destroyed: used at exit
  return *counters;
}

namespace {
LogLevel ConfiguredLevel() {
  static const LogLevel level = [] {
    auto v = env::GetEnum("OTEL_LOG_LEVEL");
    if (!v) return LogLevel::kInfo;
    if (*v == "debug" || *v == "trace" || *v == "all") return LogLevel::kDebug;
    if (*v == "info") return LogLevel::kInfo;
    if (*v == "warn" || *v == "warning") return LogLevel::kWarn;
    if (*v == "error") return LogLevel::kError;
    if (*v == "none" || *v == "off") return LogLevel::kNone;
    return LogLevel::kInfo;
  }();
  return level;
}

const char* LevelName(LogLevel l) {
  switch (l) {
    case LogLevel::kDebug:
      return "debug";
    case LogLevel::kInfo:
      return "info";
    case LogLevel::kWarn:
      return "warn";
    case LogLevel::kError:
      return "error";
    default:
      return "";
  }
}
}  // namespace

void Log(LogLevel level, const std::string& message) {
  if (level < ConfiguredLevel()) return;
  static std::mutex* mu = new std::mutex();
  static int64_t window_start = 0;
  static int in_window = 0;
  static uint64_t suppressed = 0;
  constexpr int kPerSecond = 10;
  std::lock_guard<std::mutex> lock(*mu);
  int64_t now = std::chrono::duration_cast<std::chrono::seconds>(
                    std::chrono::steady_clock::now().time_since_epoch())
                    .count();
  if (now != window_start) {
    window_start = now;
    in_window = 0;
  }
  if (++in_window > kPerSecond) {
    ++suppressed;
    return;
  }
  if (suppressed > 0) {
    std::fprintf(stderr, "prism-tracing %s: %s (%llu earlier messages suppressed)\n",
                 LevelName(level), message.c_str(), static_cast<unsigned long long>(suppressed));
    suppressed = 0;
  } else {
    std::fprintf(stderr, "prism-tracing %s: %s\n", LevelName(level), message.c_str());
  }
}
}  // namespace internal

DiagnosticsSnapshot Diagnostics() {
  auto& c = internal::GlobalCounters();
  DiagnosticsSnapshot s;
  s.spans_started = c.spans_started.load(std::memory_order_relaxed);
  s.spans_ended = c.spans_ended.load(std::memory_order_relaxed);
  s.spans_dropped = c.spans_dropped.load(std::memory_order_relaxed);
  s.spans_exported = c.spans_exported.load(std::memory_order_relaxed);
  s.spans_failed = c.spans_failed.load(std::memory_order_relaxed);
  return s;
}

std::string DiagnosticsSnapshot::ToString() const {
  return "spans started=" + std::to_string(spans_started) +
         " ended=" + std::to_string(spans_ended) + " dropped=" + std::to_string(spans_dropped) +
         " exported=" + std::to_string(spans_exported) + " failed=" + std::to_string(spans_failed);
}

}  // namespace prism::tracing
