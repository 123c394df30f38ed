#include "prism/tracing/ids.h"

#include <endian.h>
#include <pthread.h>
#include <sys/random.h>

#include <array>
#include <atomic>
#include <chrono>
#include <cstring>

namespace prism::tracing {
namespace {

// xoshiro256** (Blackman & Vigna): fast, good statistical quality; the
// state is per thread so no synchronisation is needed.
struct Xoshiro {
  uint64_t s[4];
  uint64_t generation = 0;  // the fork generation the state was seeded in

  static uint64_t Rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  uint64_t Next() {
    const uint64_t result = Rotl(s[1] * 5, 7) * 9;
    const uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = Rotl(s[3], 45);
    return result;
  }
};

// Bumped in the child after fork(): every thread-local generator notices
// and reseeds, so parent and child never share a sequence.
std::atomic<uint64_t> g_fork_generation{1};

void OnForkChild() { g_fork_generation.fetch_add(1, std::memory_order_relaxed); }

uint64_t SplitMix(uint64_t& x) {
  uint64_t z = (x += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

void Seed(Xoshiro& g) {
  static const bool registered = [] {
    pthread_atfork(nullptr, nullptr, OnForkChild);
    return true;
  }();
  (void)registered;
  uint64_t seed[4] = {0, 0, 0, 0};
  ssize_t got = getrandom(seed, sizeof(seed), 0);
  if (got != static_cast<ssize_t>(sizeof(seed))) {
    // No entropy from the OS: mix time, address and thread id instead.
    uint64_t x = static_cast<uint64_t>(
                     std::chrono::high_resolution_clock::now().time_since_epoch().count()) ^
                 reinterpret_cast<uintptr_t>(&g) ^ static_cast<uint64_t>(pthread_self());
    for (auto& v : seed) v = SplitMix(x);
  }
  for (int i = 0; i < 4; ++i) g.s[i] = seed[i];
  if ((g.s[0] | g.s[1] | g.s[2] | g.s[3]) == 0) g.s[0] = 1;  // all-zero state is a fixed point
  g.generation = g_fork_generation.load(std::memory_order_relaxed);
}

inline Xoshiro& Generator() {
  thread_local Xoshiro g{{0, 0, 0, 0}, 0};
  if (g.generation != g_fork_generation.load(std::memory_order_relaxed)) Seed(g);
  return g;
}

constexpr char kHex[] = "0123456789abcdef";

// Lower-case hex digit -> value, anything else -> 0xff: the byte-at-a-time
// path for odd lengths (version, flags).
constexpr std::array<uint8_t, 256> kHexValue = [] {
  std::array<uint8_t, 256> t{};
  for (auto& v : t) v = 0xff;
  for (int c = '0'; c <= '9'; ++c) t[c] = static_cast<uint8_t>(c - '0');
  for (int c = 'a'; c <= 'f'; ++c) t[c] = static_cast<uint8_t>(c - 'a' + 10);
  return t;
}();

constexpr uint64_t kEachByte = 0x0101010101010101ULL;

// Ids are read from every incoming traceparent and written into every
// outgoing one, so they are converted 8 characters per 64-bit word rather
// than one table lookup per character (~4x fewer instructions). The word
// holds the characters in memory order (little-endian: first char lowest).

// 8 lower-case hex chars -> 4 bytes; false if any char is not [0-9a-f].
bool DecodeWord(const char* in, uint8_t* out) {
  uint64_t x;
  std::memcpy(&x, in, 8);
  x = le64toh(x);
  // With every byte below 0x80, adding k < 0x80 per byte never carries into
  // the next byte, and bit 7 then says "byte >= 0x80 - k".
  const uint64_t high = x & (0x80 * kEachByte);
  const uint64_t ge_0 = (x + 0x50 * kEachByte) & (0x80 * kEachByte);  // >= '0'
  const uint64_t gt_9 = (x + 0x46 * kEachByte) & (0x80 * kEachByte);  // >  '9'
  const uint64_t ge_a = (x + 0x1f * kEachByte) & (0x80 * kEachByte);  // >= 'a'
  const uint64_t gt_f = (x + 0x19 * kEachByte) & (0x80 * kEachByte);  // >  'f'
  const uint64_t digit = ge_0 & ~gt_9;
  const uint64_t letter = ge_a & ~gt_f;
  if (high != 0 || (digit | letter) != 0x80 * kEachByte) return false;
  // '0'..'9' have low nibble 0..9, 'a'..'f' 1..6 (+9 makes 10..15).
  const uint64_t nib = (x & (0x0f * kEachByte)) + (letter >> 7) * 9;
  // Pairs of nibbles -> one byte per 16-bit lane, then pack the lanes.
  uint64_t v = ((nib & 0x00ff00ff00ff00ffULL) << 4) | ((nib >> 8) & 0x00ff00ff00ff00ffULL);
  v = (v | (v >> 8)) & 0x0000ffff0000ffffULL;
  v = (v | (v >> 16)) & 0x00000000ffffffffULL;
  const uint32_t w = htole32(static_cast<uint32_t>(v));
  std::memcpy(out, &w, 4);
  return true;
}

// 4 bytes -> 8 lower-case hex chars.
void EncodeWord(const uint8_t* in, char* out) {
  uint32_t w;
  std::memcpy(&w, in, 4);
  uint64_t x = le32toh(w);
  x = (x | (x << 16)) & 0x0000ffff0000ffffULL;  // one byte per 16-bit lane
  x = (x | (x << 8)) & 0x00ff00ff00ff00ffULL;
  // High nibble first in memory: the lane's low byte.
  const uint64_t nib = ((x >> 4) & 0x000f000f000f000fULL) | ((x & 0x000f000f000f000fULL) << 8);
  const uint64_t letter = ((nib + 0x06 * kEachByte) >> 4) & kEachByte;  // nibble >= 10
  const uint64_t chars = htole64(nib + 0x30 * kEachByte + letter * ('a' - '0' - 10));
  std::memcpy(out, &chars, 8);
}

}  // namespace

namespace hex {
bool DecodeLower(std::string_view in, uint8_t* out, size_t n) {
  if (in.size() != 2 * n) return false;
  const char* p = in.data();
  size_t i = 0;
  for (; i + 4 <= n; i += 4) {
    if (!DecodeWord(p + 2 * i, out + i)) return false;
  }
  unsigned bad = 0;
  for (; i < n; ++i) {
    const uint8_t hi = kHexValue[static_cast<unsigned char>(p[2 * i])];
    const uint8_t lo = kHexValue[static_cast<unsigned char>(p[2 * i + 1])];
    bad |= hi | lo;  // 0xff has bit 4 set; a valid digit never does
    out[i] = static_cast<uint8_t>((hi << 4) | (lo & 0x0f));
  }
  return (bad & 0x10) == 0;
}

void Encode(const uint8_t* in, size_t n, char* out) {
  size_t i = 0;
  for (; i + 4 <= n; i += 4) EncodeWord(in + i, out + 2 * i);
  for (; i < n; ++i) {
    out[2 * i] = kHex[in[i] >> 4];
    out[2 * i + 1] = kHex[in[i] & 0xf];
  }
}

std::string Encode(const uint8_t* in, size_t n) {
  std::string out(2 * n, '\0');
  Encode(in, n, out.data());
  return out;
}
}  // namespace hex

TraceId TraceId::FromHex(std::string_view h) {
  TraceId id;
  if (!hex::DecodeLower(h, id.bytes_.data(), kSize)) return TraceId();
  return id;
}

bool TraceId::IsValid() const {
  uint64_t a, b;
  std::memcpy(&a, bytes_.data(), 8);
  std::memcpy(&b, bytes_.data() + 8, 8);
  return (a | b) != 0;
}

std::string TraceId::ToHex() const {
  std::string s(2 * kSize, '0');
  WriteHex(s.data());
  return s;
}
void TraceId::WriteHex(char* out) const { hex::Encode(bytes_.data(), kSize, out); }

uint64_t TraceId::Low56() const {
  uint64_t r = 0;
  for (size_t i = 9; i < kSize; ++i) r = (r << 8) | bytes_[i];
  return r;
}

SpanId SpanId::FromHex(std::string_view h) {
  SpanId id;
  if (!hex::DecodeLower(h, id.bytes_.data(), kSize)) return SpanId();
  return id;
}

bool SpanId::IsValid() const {
  uint64_t a;
  std::memcpy(&a, bytes_.data(), 8);
  return a != 0;
}

std::string SpanId::ToHex() const {
  std::string s(2 * kSize, '0');
  WriteHex(s.data());
  return s;
}
void SpanId::WriteHex(char* out) const { hex::Encode(bytes_.data(), kSize, out); }

TraceId GenerateTraceId() {
  Xoshiro& g = Generator();
  std::array<uint8_t, TraceId::kSize> b;
  uint64_t hi, lo;
  do {
    hi = g.Next();
    lo = g.Next();
  } while ((hi | lo) == 0);
  std::memcpy(b.data(), &hi, 8);
  std::memcpy(b.data() + 8, &lo, 8);
  return TraceId(b);
}

SpanId GenerateSpanId() {
  Xoshiro& g = Generator();
  uint64_t v;
  do {
    v = g.Next();
  } while (v == 0);
  std::array<uint8_t, SpanId::kSize> b;
  std::memcpy(b.data(), &v, 8);
  return SpanId(b);
}

}  // namespace prism::tracing
