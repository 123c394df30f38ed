#pragma once
// State shared by a TracerProvider, its Tracers and their spans. A span's
// data keeps its tracer (and so the pipeline) alive until it is exported;
// TracerProvider::Shutdown empties the pipeline, which breaks that cycle.

#include <atomic>
#include <cstring>
#include <ctime>
#include <limits>
#include <memory>

#include "prism/tracing/adaptive.h"
#include "prism/tracing/limits.h"
#include "prism/tracing/processor.h"
#include "prism/tracing/resource.h"
#include "prism/tracing/sampler.h"

namespace prism::tracing::internal {

struct ProviderShared {
  std::shared_ptr<const Resource> resource;
  std::unique_ptr<Sampler> sampler;
  bool sampler_reads_attributes = true;
  SpanLimits limits;
  std::unique_ptr<SpanProcessor> processor;
  std::shared_ptr<AdaptiveSampling> adaptive;
  std::atomic<bool> shut_down{false};
  bool log_diagnostics_at_shutdown = false;
};

// What exported spans need to know of their tracer; shared by its spans.
struct SpanOrigin {
  InstrumentationScope scope;
  std::shared_ptr<const Resource> resource;
};

struct TracerShared {
  std::shared_ptr<const SpanOrigin> origin;
  std::shared_ptr<ProviderShared> provider;
};

inline uint64_t WallNanos() {
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000ull + static_cast<uint64_t>(ts.tv_nsec);
}

inline int64_t SteadyNanos() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000000000ll + ts.tv_nsec;
}

// A one-bit summary of an attribute key: its length and last 8 bytes (all
// of a shorter key), mixed by a multiply, choose one of 64 bits. OR-ed over
// a list's keys it makes a 64-bit filter: a key whose bit is clear is
// certainly not in the list, so adding it needs no search — and most keys
// a span is given are new. Keys are never empty.
// Why these bytes: the earlier sum of the length and two characters gave
// rpc.status_code the bit of rpc.system.name, so both gRPC spans of every
// proxied call searched their lists for it (two searches a call, ~120
// instructions each); semantic-convention keys share prefixes, not endings.
inline uint64_t KeyBit(std::string_view key) {
  const size_t n = key.size();
  uint64_t w = 0;
  if (n >= 8) {
    std::memcpy(&w, key.data() + n - 8, 8);
  } else {
    for (size_t i = 0; i < n; ++i) w |= uint64_t{static_cast<unsigned char>(key[i])} << (8 * i);
  }
  return uint64_t{1} << (((w ^ n) * 0x9E3779B97F4A7C15ull) >> 58);
}

// The entry of `attrs` (an Attributes, const or not) whose key is `key`
// (not empty), or null. Keys share prefixes ("rpc.", "prism."): size and
// last byte are compared before memcmp.
template <typename List>
auto* FindKey(List& attrs, std::string_view key) {
  const size_t n = key.size();
  const char last = key[n - 1];
  for (auto& kv : attrs) {
    if (kv.key.size() == n && kv.key[n - 1] == last &&
        std::memcmp(kv.key.data(), key.data(), n) == 0) {
      return &kv;
    }
  }
  return static_cast<decltype(&*attrs.begin())>(nullptr);
}

// True when no string value in `attrs` is longer than `max`: such a list
// needs no truncation, so a span may take it as it is (the fast paths of
// Tracer::Start and Span::SetAttributes). The proxy runs with a 4096-byte
// value limit, and its attributes are short.
inline bool ValuesWithin(const Attributes& attrs, uint32_t max) {
  if (max == std::numeric_limits<uint32_t>::max()) return true;
  for (const auto& kv : attrs) {
    if (const auto* s = std::get_if<std::string>(&kv.value)) {
      if (s->size() > max) return false;
    } else if (const auto* v = std::get_if<std::vector<std::string>>(&kv.value)) {
      for (const auto& e : *v) {
        if (e.size() > max) return false;
      }
    }
  }
  return true;
}

// Makes `attrs` canonical by the rules PutAttribute applies one by one
// (empty keys dropped; a repeated key keeps its first position and its last
// value) and returns its KeyBit filter. Every path that takes a whole list
// at once (Tracer::Start, Span::SetAttributes) goes through it. Defined in
// span.cc.
uint64_t Canonicalize(Attributes& attrs);

// Adds or replaces `key` in `attrs`, honouring the count and value-length
// limits; what does not fit is counted in `dropped`. With `key_bits` (the
// KeyBit filter of `attrs`, kept up to date here) a new key skips the
// search for an existing one. Defined in span.cc.
void PutAttribute(Attributes& attrs, uint32_t& dropped, uint32_t max_count, uint32_t max_length,
                  AttributeKey&& key, AttributeValue&& value, uint64_t* key_bits = nullptr);

// True when a key of `entries` from index `from` on is in `attrs`, whose
// KeyBit filter (or a superset of it) is `attrs_bits`. Defined in
// attribute_block.cc.
bool Overlaps(const Attributes& entries, size_t from, const Attributes& attrs, uint64_t attrs_bits);

// True when no key of `attrs` (whose KeyBit filter is `attrs_bits`) is in
// `block`: a span may then refer to the block and own `attrs`. Defined in
// attribute_block.cc, like Flatten.
bool Disjoint(const AttributeBlock& block, const Attributes& attrs, uint64_t attrs_bits);

// Copies a span's shared attribute block into its own list, in front (the
// order the span's attributes have), and lets go of the block: for a key
// the span changes that the block holds, and for limits the block does not
// fit. Does nothing for a span without a block.
void Flatten(SpanData& s);

// A span record for a new span: a recycled one (RecycleSpanData, public in
// span_data.h) when this thread or the shared pool has one, else a new
// one. Recycled records keep their name's capacity, so a span that reuses
// one allocates less. Defined in span.cc.
std::unique_ptr<SpanData> NewSpanData();

// One monotonic clock read gives both times a span needs: the wall time is
// the monotonic time plus a per-thread offset from CLOCK_REALTIME, refreshed
// every 100 ms, so a wall-clock step shows up within 100 ms while a span
// start costs one clock read instead of two.
struct ClockReading {
  uint64_t wall_nanos;
  int64_t steady_nanos;
};

inline ClockReading Now() {
  constexpr int64_t kRefreshNanos = 100'000'000;
  thread_local int64_t anchor_steady = 0;
  thread_local int64_t wall_minus_steady = 0;
  thread_local bool anchored = false;
  const int64_t steady = SteadyNanos();
  if (!anchored || steady - anchor_steady > kRefreshNanos) {
    wall_minus_steady = static_cast<int64_t>(WallNanos()) - steady;
    anchor_steady = steady;
    anchored = true;
  }
  return {static_cast<uint64_t>(steady + wall_minus_steady), steady};
}

}  // namespace prism::tracing::internal
