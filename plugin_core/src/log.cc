#include "prism/plugin/log.h"

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <mutex>
#include <string>

#include "prism/tracing/context.h"

namespace prism::plugin {
namespace {

std::mutex& NameMutex() {
  static auto* mu = new std::mutex();
  return *mu;
}
std::string& Name() {
  static auto* name = new std::string("prism-plugin");
  return *name;
}

LogLevel LevelFromEnv() {
  const char* v = std::getenv("PRISM_LOG_LEVEL");
  std::string s = v ? v : "";
  if (s == "debug") return LogLevel::kDebug;
  if (s == "warn") return LogLevel::kWarn;
  if (s == "error") return LogLevel::kError;
  return LogLevel::kInfo;
}
std::atomic<int>& MinLevel() {
  static std::atomic<int> level{static_cast<int>(LevelFromEnv())};
  return level;
}

const char* LevelName(LogLevel l) {
  switch (l) {
    case LogLevel::kDebug:
      return "DEBUG";
    case LogLevel::kInfo:
      return "INFO";
    case LogLevel::kWarn:
      return "WARN";
    case LogLevel::kError:
      return "ERROR";
  }
  return "INFO";
}

}  // namespace

void SetLogName(std::string_view name) {
  std::lock_guard<std::mutex> lock(NameMutex());
  Name() = std::string(name);
}

void SetLogLevel(LogLevel level) { MinLevel().store(static_cast<int>(level)); }

void Log(LogLevel level, std::string_view message) {
  Log(level, prism::tracing::CurrentSpanContext(), message);
}

void Log(LogLevel level, const prism::tracing::SpanContext& span, std::string_view message) {
  if (static_cast<int>(level) < MinLevel().load(std::memory_order_relaxed)) return;
  auto now = std::chrono::system_clock::now();
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count();
  std::time_t secs = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char ts[128];  // generous: g++ sizes each %d field for any int
  std::snprintf(ts, sizeof ts, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                static_cast<int>(ms % 1000));
  std::string line;
  line.reserve(96 + message.size());
  line.append(ts).append(" ");
  {
    std::lock_guard<std::mutex> lock(NameMutex());
    line.append(Name());
  }
  line.append(" ").append(LevelName(level)).append(" ");
  // One line: newlines in the message are escaped.
  for (char c : message) {
    if (c == '\n') {
      line.append("\\n");
    } else {
      line.push_back(c);
    }
  }
  if (span.IsValid()) {
    line.append(" trace_id=").append(span.trace_id().ToHex());
    line.append(" span_id=").append(span.span_id().ToHex());
  }
  line.push_back('\n');
  // One write() so concurrent lines do not interleave.
  ssize_t ignored = ::write(STDERR_FILENO, line.data(), line.size());
  (void)ignored;
}

}  // namespace prism::plugin
