#pragma once
// Small text helpers shared by the header parsers.

#include <string_view>

namespace prism::tracing::internal {

constexpr bool IsOws(char c) { return c == ' ' || c == '\t'; }

// Strips optional whitespace (spaces and tabs, RFC 9110) at both ends.
inline std::string_view TrimOws(std::string_view s) {
  size_t b = 0;
  size_t e = s.size();
  while (b < e && IsOws(s[b])) ++b;
  while (e > b && IsOws(s[e - 1])) --e;
  return s.substr(b, e - b);
}

}  // namespace prism::tracing::internal
