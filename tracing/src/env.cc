#include "prism/tracing/env.h"

#include <algorithm>
#include <cstdlib>

#include "prism/tracing/diagnostics.h"

namespace prism::tracing::env {

std::string Trim(std::string_view s) {
  size_t b = 0, e = s.size();
  while (b < e && (s[b] == ' ' || s[b] == '\t')) ++b;
  while (e > b && (s[e - 1] == ' ' || s[e - 1] == '\t')) --e;
  return std::string(s.substr(b, e - b));
}

namespace {
int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}
}  // namespace

std::string PercentDecode(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size()) {
      int hi = HexValue(s[i + 1]), lo = HexValue(s[i + 2]);
      if (hi >= 0 && lo >= 0) {
        out.push_back(static_cast<char>(hi * 16 + lo));
        i += 2;
        continue;
      }
    }
    out.push_back(s[i]);
  }
  return out;
}

std::string ToLower(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

std::vector<std::string> SplitList(std::string_view text) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= text.size()) {
    size_t comma = text.find(',', start);
    if (comma == std::string_view::npos) comma = text.size();
    std::string item = ToLower(Trim(text.substr(start, comma - start)));
    start = comma + 1;
    if (!item.empty() && std::find(out.begin(), out.end(), item) == out.end()) {
      out.push_back(std::move(item));
    }
  }
  return out;
}

std::optional<std::string> Get(const char* name, const Defaults* defaults) {
  const char* v = std::getenv(name);
  if (v != nullptr && *v != '\0') return std::string(v);
  if (defaults) {
    if (auto it = defaults->find(std::string_view(name));
        it != defaults->end() && !it->second.empty()) {
      return it->second;
    }
  }
  return std::nullopt;
}

std::optional<std::string> GetEnum(const char* name, const Defaults* defaults) {
  auto v = Get(name, defaults);
  if (!v) return std::nullopt;
  std::string t = ToLower(Trim(*v));
  if (t.empty()) return std::nullopt;
  return t;
}

std::optional<bool> GetBool(const char* name, const Defaults* defaults) {
  auto v = GetEnum(name, defaults);
  if (!v) return std::nullopt;
  if (*v == "true") return true;
  if (*v == "false") return false;
  internal::Log(internal::LogLevel::kWarn,
                std::string(name) + "=" + *v + " is not true or false; ignored");
  return std::nullopt;
}

std::optional<long long> GetInt(const char* name, const Defaults* defaults) {
  auto v = Get(name, defaults);
  if (!v) return std::nullopt;
  std::string t = Trim(*v);
  char* end = nullptr;
  errno = 0;
  long long n = std::strtoll(t.c_str(), &end, 10);
  if (t.empty() || *end != '\0' || errno != 0) {
    internal::Log(internal::LogLevel::kWarn,
                  std::string(name) + "=" + *v + " is not an integer; ignored");
    return std::nullopt;
  }
  return n;
}

std::optional<std::chrono::milliseconds> GetMillis(const char* name, const Defaults* defaults) {
  auto n = GetInt(name, defaults);
  if (!n) return std::nullopt;
  if (*n < 0) {
    internal::Log(internal::LogLevel::kWarn, std::string(name) + " is negative; ignored");
    return std::nullopt;
  }
  return std::chrono::milliseconds(*n);
}

}  // namespace prism::tracing::env
