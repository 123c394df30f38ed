#include "log.h"

#include <chrono>
#include <cstdio>
#include <ctime>
#include <mutex>
#include <string>

namespace prism::proxy {

void Log(LogLevel level, std::string_view message) {
  static std::mutex mu;
  auto now = std::chrono::system_clock::now();
  std::time_t t = std::chrono::system_clock::to_time_t(now);
  int ms = static_cast<int>(
      std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() % 1000);
  std::tm tm{};
  localtime_r(&t, &tm);
  char stamp[32];
  std::strftime(stamp, sizeof stamp, "%H:%M:%S", &tm);
  const char* lv = level == LogLevel::kInfo ? "info" : level == LogLevel::kWarn ? "warn" : "error";
  std::lock_guard<std::mutex> lock(mu);
  std::fprintf(stderr, "prism-proxy %s.%03d %s: %.*s\n", stamp, ms, lv,
               static_cast<int>(message.size()), message.data());
}

}  // namespace prism::proxy
