#pragma once
// UTF-8 validation for strings that go on the wire (OTLP requires UTF-8).

#include <string>
#include <string_view>

namespace prism::tracing::otlp::utf8 {

// Fast path: pure ASCII. Otherwise a full check (no overlongs, surrogates or
// code points above U+10FFFF).
bool IsValid(std::string_view s);
// A copy with each invalid byte replaced by U+FFFD.
std::string Sanitize(std::string_view s);

}  // namespace prism::tracing::otlp::utf8
