#include "prism/tracing/ids.h"

#include <pthread.h>
#include <sys/random.h>

#include <array>
#include <atomic>
#include <chrono>

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

// Lower-case hex digit -> value, anything else -> 0xff (one load per char;
// traceparent parsing runs on every incoming call).
constexpr std::array<uint8_t, 256> kHexValue = [] {
  std::array<uint8_t, 256> t{};
  for (auto& v : t) v = 0xff;
  for (int c = '0'; c <= '9'; ++c) t[c] = static_cast<uint8_t>(c - '0');
  for (int c = 'a'; c <= 'f'; ++c) t[c] = static_cast<uint8_t>(c - 'a' + 10);
  return t;
}();

}  // namespace

namespace hex {
bool DecodeLower(std::string_view in, uint8_t* out, size_t n) {
  if (in.size() != 2 * n) return false;
  const auto* p = reinterpret_cast<const unsigned char*>(in.data());
  unsigned bad = 0;
  for (size_t i = 0; i < n; ++i) {
    const uint8_t hi = kHexValue[p[2 * i]];
    const uint8_t lo = kHexValue[p[2 * i + 1]];
    bad |= hi | lo;  // 0xff has bit 4 set; a valid digit never does
    out[i] = static_cast<uint8_t>((hi << 4) | (lo & 0x0f));
  }
  return (bad & 0x10) == 0;
}

void Encode(const uint8_t* in, size_t n, char* out) {
  for (size_t i = 0; i < n; ++i) {
    out[2 * i] = kHex[in[i] >> 4];
    out[2 * i + 1] = kHex[in[i] & 0xf];
  }
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
