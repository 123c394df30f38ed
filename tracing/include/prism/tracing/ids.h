#pragma once
// Trace and span identifiers and the generator that makes them.

#include <array>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

namespace prism::tracing {

// A 16-byte W3C trace id. All-zero is the invalid id.
class TraceId {
 public:
  static constexpr size_t kSize = 16;
  constexpr TraceId() = default;
  explicit TraceId(const uint8_t (&bytes)[kSize]) { std::memcpy(bytes_.data(), bytes, kSize); }
  explicit TraceId(const std::array<uint8_t, kSize>& bytes) : bytes_(bytes) {}

  // Parses exactly 32 lower-case hex digits; returns the invalid id otherwise.
  static TraceId FromHex(std::string_view hex);

  bool IsValid() const;
  const std::array<uint8_t, kSize>& bytes() const { return bytes_; }
  std::array<uint8_t, kSize>& mutable_bytes() { return bytes_; }
  std::string ToHex() const;
  // Writes 32 hex characters to `out` (no terminator).
  void WriteHex(char* out) const;
  // The least-significant 56 bits: the randomness R of consistent sampling.
  uint64_t Low56() const;

  friend bool operator==(const TraceId&, const TraceId&) = default;

 private:
  std::array<uint8_t, kSize> bytes_{};
};

// An 8-byte span id. All-zero is the invalid id.
class SpanId {
 public:
  static constexpr size_t kSize = 8;
  constexpr SpanId() = default;
  explicit SpanId(const uint8_t (&bytes)[kSize]) { std::memcpy(bytes_.data(), bytes, kSize); }
  explicit SpanId(const std::array<uint8_t, kSize>& bytes) : bytes_(bytes) {}
  static SpanId FromHex(std::string_view hex);

  bool IsValid() const;
  const std::array<uint8_t, kSize>& bytes() const { return bytes_; }
  std::string ToHex() const;
  void WriteHex(char* out) const;

  friend bool operator==(const SpanId&, const SpanId&) = default;

 private:
  std::array<uint8_t, kSize> bytes_{};
};

// Fast random ids: a per-thread xoshiro256** generator seeded from the OS
// (getrandom) and reseeded in a child after fork(), so forked workers never
// repeat their parent's ids. Never returns an all-zero id.
TraceId GenerateTraceId();
SpanId GenerateSpanId();

// The one lower-case hex codec of the code base: propagators, exporters,
// the CLI and the proxy's token hashes all use it.
namespace hex {
// Decodes `2*n` lower-case hex chars into n bytes. Returns false on any other char.
bool DecodeLower(std::string_view in, uint8_t* out, size_t n);
// Writes 2*n lower-case hex chars to `out` (no terminator).
void Encode(const uint8_t* in, size_t n, char* out);
// The same, as a string.
std::string Encode(const uint8_t* in, size_t n);
}  // namespace hex

}  // namespace prism::tracing
