#include "utf8.h"

#include <cstdint>
#include <cstring>

namespace prism::tracing::otlp::utf8 {

bool IsValid(std::string_view sv) {
  const auto* s = reinterpret_cast<const unsigned char*>(sv.data());
  size_t n = sv.size();
  size_t i = 0;
  // ASCII fast path, 8 bytes at a time.
  while (i + 8 <= n) {
    uint64_t w;
    std::memcpy(&w, s + i, 8);
    if (w & 0x8080808080808080ull) break;
    i += 8;
  }
  while (i < n) {
    if (s[i] < 0x80) {
      ++i;
      continue;
    }
    size_t len = SequenceLength(s + i, n - i);
    if (len == 0) return false;
    i += len;
  }
  return true;
}

std::string Sanitize(std::string_view sv) {
  std::string out;
  out.reserve(sv.size() + 8);
  const auto* s = reinterpret_cast<const unsigned char*>(sv.data());
  size_t n = sv.size();
  for (size_t i = 0; i < n;) {
    size_t len = SequenceLength(s + i, n - i);
    if (len == 0) {
      out.append("\xef\xbf\xbd");
      ++i;
    } else {
      out.append(sv.data() + i, len);
      i += len;
    }
  }
  return out;
}

}  // namespace prism::tracing::otlp::utf8
