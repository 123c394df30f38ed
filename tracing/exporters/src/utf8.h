#pragma once
// UTF-8 validation for strings that go on the wire (OTLP requires UTF-8).

#include <cstddef>
#include <string>
#include <string_view>

namespace prism::tracing::otlp::utf8 {

// Fast path: pure ASCII. Otherwise a full check (no overlongs, surrogates or
// code points above U+10FFFF).
bool IsValid(std::string_view s);
// A copy with each invalid byte replaced by U+FFFD.
std::string Sanitize(std::string_view s);

// Length (1-4) of the valid UTF-8 sequence at s[0] (n >= 1 bytes available),
// or 0 if it is invalid (bad lead byte, truncated, overlong, surrogate or
// above U+10FFFF). Sanitize replaces the byte at an invalid position with
// U+FFFD and resumes at the next byte.
inline size_t SequenceLength(const unsigned char* s, size_t n) {
  unsigned char c = s[0];
  if (c < 0x80) return 1;
  if (c >= 0xc2 && c <= 0xdf) return (n >= 2 && (s[1] & 0xc0) == 0x80) ? 2 : 0;
  if (c >= 0xe0 && c <= 0xef) {
    if (n < 3 || (s[1] & 0xc0) != 0x80 || (s[2] & 0xc0) != 0x80) return 0;
    if (c == 0xe0 && s[1] < 0xa0) return 0;   // overlong
    if (c == 0xed && s[1] >= 0xa0) return 0;  // surrogate
    return 3;
  }
  if (c >= 0xf0 && c <= 0xf4) {
    if (n < 4 || (s[1] & 0xc0) != 0x80 || (s[2] & 0xc0) != 0x80 || (s[3] & 0xc0) != 0x80) {
      return 0;
    }
    if (c == 0xf0 && s[1] < 0x90) return 0;   // overlong
    if (c == 0xf4 && s[1] >= 0x90) return 0;  // > U+10FFFF
    return 4;
  }
  return 0;
}

}  // namespace prism::tracing::otlp::utf8
