// OTLP encoders written from the opentelemetry-proto field definitions
// (trace/v1/trace.proto, common/v1/common.proto, resource/v1/resource.proto,
// collector/trace/v1/trace_service.proto) and docs/specification.md (JSON).

#include "prism/tracing/exporters/otlp_encoder.h"

#include <algorithm>
#include <array>
#include <bit>
#include <charconv>
#include <cmath>
#include <cstring>
#include <nlohmann/json.hpp>
#include <variant>
#include <vector>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "prism/tracing/ids.h"
#include "utf8.h"

namespace prism::tracing::otlp {
namespace {

// ---------------------------------------------------------------------------
// Grouping by resource and scope.

struct ScopeGroup {
  const InstrumentationScope* scope;
  std::vector<const SpanData*> spans;
};
struct ResourceGroup {
  const Resource* resource;
  std::vector<ScopeGroup> scopes;
};

std::vector<ResourceGroup> Group(SpanBatch spans) {
  std::vector<ResourceGroup> groups;
  ResourceGroup* last_r = nullptr;
  ScopeGroup* last_s = nullptr;
  // Spans of one tracer share an origin (its scope and the resource): a
  // span with the previous one's goes to the same group without looking up
  // either (~50 instructions a span, callgrind, tenth pass in
  // docs/benchmarks.md).
  const void* last_origin = nullptr;
  for (const auto& sp : spans) {
    if (!sp) continue;
    if (last_s != nullptr && sp->origin && sp->origin.get() == last_origin) {
      last_s->spans.push_back(sp.get());
      continue;
    }
    last_origin = sp->origin.get();
    const Resource* r = &sp->resource();
    const InstrumentationScope* s = &sp->scope();
    if (last_s == nullptr || last_r->resource != r || last_s->scope != s) {
      last_r = nullptr;
      for (auto& g : groups) {
        if (g.resource == r) last_r = &g;
      }
      if (last_r == nullptr) {
        groups.push_back(ResourceGroup{r, {}});
        last_r = &groups.back();
      }
      last_s = nullptr;
      for (auto& sg : last_r->scopes) {
        if (sg.scope == s) last_s = &sg;
      }
      if (last_s == nullptr) {
        last_r->scopes.push_back(ScopeGroup{s, {}});
        last_s = &last_r->scopes.back();
        last_s->spans.reserve(spans.size());
      }
    }
    last_s->spans.push_back(sp.get());
  }
  return groups;
}

// ---------------------------------------------------------------------------
// Protobuf.

enum Wire : uint32_t { kVarint = 0, kFixed64 = 1, kLen = 2, kFixed32 = 5 };

inline size_t VarintSize(uint64_t v) {
  size_t n = 1;
  while (v >= 0x80) {
    v >>= 7;
    ++n;
  }
  return n;
}

class PbWriter {
 public:
  explicit PbWriter(std::string& out) : out_(out) {}

  void Varint(uint64_t v) {
    char buf[10];
    size_t n = 0;
    while (v >= 0x80) {
      buf[n++] = static_cast<char>(v | 0x80);
      v >>= 7;
    }
    buf[n++] = static_cast<char>(v);
    out_.append(buf, n);
  }
  void Tag(uint32_t field, Wire wire) { Varint((field << 3) | wire); }
  void VarintField(uint32_t field, uint64_t v) {
    Tag(field, kVarint);
    Varint(v);
  }
  void VarintFieldNonZero(uint32_t field, uint64_t v) {
    if (v != 0) VarintField(field, v);
  }
  void Fixed64Field(uint32_t field, uint64_t v) {
    Tag(field, kFixed64);
    char buf[8];
    for (int i = 0; i < 8; ++i) buf[i] = static_cast<char>(v >> (8 * i));
    out_.append(buf, 8);
  }
  void Fixed32Field(uint32_t field, uint32_t v) {
    Tag(field, kFixed32);
    char buf[4];
    for (int i = 0; i < 4; ++i) buf[i] = static_cast<char>(v >> (8 * i));
    out_.append(buf, 4);
  }
  void BytesField(uint32_t field, const void* data, size_t n) {
    Tag(field, kLen);
    Varint(n);
    out_.append(static_cast<const char*>(data), n);
  }
  // Strings must be UTF-8 on the wire (receivers such as the Collector
  // reject the request otherwise): invalid sequences become U+FFFD.
  void StringField(uint32_t field, std::string_view s) {
    if (utf8::IsValid(s)) {
      BytesField(field, s.data(), s.size());
    } else {
      std::string fixed = utf8::Sanitize(s);
      BytesField(field, fixed.data(), fixed.size());
    }
  }
  void StringFieldNonEmpty(uint32_t field, std::string_view s) {
    if (!s.empty()) StringField(field, s);
  }

  // Length-delimited sub-message with a back-patched length: `reserve` bytes
  // are set aside for the length varint and the body is moved only when the
  // guess was wrong.
  size_t Begin(uint32_t field, size_t reserve) {
    Tag(field, kLen);
    size_t pos = out_.size();
    out_.append(reserve, '\0');
    return pos;
  }
  void End(size_t pos, size_t reserve) {
    size_t len = out_.size() - pos - reserve;
    size_t n = VarintSize(len);
    if (n > reserve) {
      out_.insert(pos, n - reserve, '\0');
    } else if (n < reserve) {
      out_.erase(pos, reserve - n);
    }
    char* p = out_.data() + pos;
    uint64_t v = len;
    while (v >= 0x80) {
      *p++ = static_cast<char>(v | 0x80);
      v >>= 7;
    }
    *p = static_cast<char>(v);
  }

  std::string& out() { return out_; }

 private:
  std::string& out_;
};

template <typename T>
void PbArrayElement(PbWriter& w, const T& v) {
  size_t any = w.Begin(1, 1);  // ArrayValue.values
  if constexpr (std::is_same_v<T, bool>) {
    w.VarintField(2, v ? 1 : 0);
  } else if constexpr (std::is_same_v<T, int64_t>) {
    w.VarintField(3, static_cast<uint64_t>(v));
  } else if constexpr (std::is_same_v<T, double>) {
    uint64_t bits;
    std::memcpy(&bits, &v, 8);
    w.Fixed64Field(4, bits);
  } else {
    w.StringField(1, v);
  }
  w.End(any, 1);
}

// Writes the body of an AnyValue.
void PbAnyValueBody(PbWriter& w, const AttributeValue& value) {
  switch (value.index()) {
    case 0:
      w.VarintField(2, std::get<bool>(value) ? 1 : 0);
      break;
    case 1:
      w.VarintField(3, static_cast<uint64_t>(std::get<int64_t>(value)));
      break;
    case 2: {
      uint64_t bits;
      double d = std::get<double>(value);
      std::memcpy(&bits, &d, 8);
      w.Fixed64Field(4, bits);
      break;
    }
    case 3:
      w.StringField(1, std::get<std::string>(value));
      break;
    default: {
      size_t arr = w.Begin(5, 2);
      std::visit(
          [&](const auto& v) {
            using V = std::decay_t<decltype(v)>;
            if constexpr (std::is_same_v<V, std::vector<bool>>) {
              for (bool b : v) PbArrayElement(w, b);
            } else if constexpr (std::is_same_v<V, std::vector<int64_t>> ||
                                 std::is_same_v<V, std::vector<double>> ||
                                 std::is_same_v<V, std::vector<std::string>>) {
              for (const auto& e : v) PbArrayElement(w, e);
            }
          },
          value);
      w.End(arr, 2);
      break;
    }
  }
}

void PbAttributes(PbWriter& w, uint32_t field, const Attributes& attributes) {
  for (const auto& kv : attributes) {
    size_t kvpos = w.Begin(field, 1);
    w.StringField(1, kv.key);
    size_t any = w.Begin(2, 1);
    PbAnyValueBody(w, kv.value);
    w.End(any, 1);
    w.End(kvpos, 1);
  }
}

// An attribute block's entries as Span.attributes (field 9).
void EncodePbSpanBlock(const Attributes& attributes, std::string& out) {
  PbWriter w(out);
  PbAttributes(w, 9, attributes);
}

void PbSpan(PbWriter& w, const SpanData& s) {
  size_t pos = w.Begin(2, 2);  // ScopeSpans.spans
  w.BytesField(1, s.context.trace_id().bytes().data(), TraceId::kSize);
  w.BytesField(2, s.context.span_id().bytes().data(), SpanId::kSize);
  if (!s.context.trace_state().empty()) w.StringField(3, s.context.trace_state().ToHeader());
  if (s.parent_span_id.IsValid()) w.BytesField(4, s.parent_span_id.bytes().data(), SpanId::kSize);
  w.StringFieldNonEmpty(5, s.name);
  w.VarintField(6, static_cast<uint64_t>(s.kind));
  w.Fixed64Field(7, s.start_unix_nano);
  w.Fixed64Field(8, s.end_unix_nano);
  if (s.shared_attributes) {
    w.out().append(s.shared_attributes->Encoded(AttributeBlock::Format::kOtlpProtobufSpan,
                                                &EncodePbSpanBlock));
  }
  PbAttributes(w, 9, s.attributes);
  w.VarintFieldNonZero(10, s.dropped_attributes_count);
  for (const auto& e : s.events) {
    size_t ep = w.Begin(11, 1);
    w.Fixed64Field(1, e.time_unix_nano);
    w.StringFieldNonEmpty(2, e.name);
    PbAttributes(w, 3, e.attributes);
    w.VarintFieldNonZero(4, e.dropped_attributes_count);
    w.End(ep, 1);
  }
  w.VarintFieldNonZero(12, s.dropped_events_count);
  for (const auto& l : s.links) {
    size_t lp = w.Begin(13, 1);
    w.BytesField(1, l.context.trace_id().bytes().data(), TraceId::kSize);
    w.BytesField(2, l.context.span_id().bytes().data(), SpanId::kSize);
    if (!l.context.trace_state().empty()) w.StringField(3, l.context.trace_state().ToHeader());
    PbAttributes(w, 4, l.attributes);
    w.VarintFieldNonZero(5, l.dropped_attributes_count);
    w.Fixed32Field(6, LinkFlags(l));
    w.End(lp, 1);
  }
  w.VarintFieldNonZero(14, s.dropped_links_count);
  if (s.status != StatusCode::kUnset || !s.status_message.empty()) {
    size_t st = w.Begin(15, 1);
    w.StringFieldNonEmpty(2, s.status_message);
    w.VarintFieldNonZero(3, static_cast<uint64_t>(s.status));
    w.End(st, 1);
  }
  w.Fixed32Field(16, SpanFlags(s));
  w.End(pos, 2);
}

// ---------------------------------------------------------------------------
// JSON.
//
// JsonWriter appends straight into the output string's buffer through a
// cursor: the string is resized ahead of the cursor in small steps (so the
// zero fill stays cheap and in cache) and cut back to the cursor at the end.
// Most writes are one bounds check and a few stores.

constexpr uint64_t kOnes = 0x0101010101010101ull;
constexpr uint64_t kHighBits = 0x8080808080808080ull;
constexpr bool kLittleEndian = std::endian::native == std::endian::little;

inline uint64_t Load64(const unsigned char* p) {
  uint64_t v;
  std::memcpy(&v, p, 8);
  return v;
}
inline void Store64(char* p, uint64_t v) { std::memcpy(p, &v, 8); }

// The n (1-7) bytes at p in the low bytes of a word, the rest zero
// (little-endian), without reading past p[n-1].
inline uint64_t LoadShort(const unsigned char* p, size_t n) {
  if (n >= 4) {
    uint32_t lo, hi;
    std::memcpy(&lo, p, 4);
    std::memcpy(&hi, p + n - 4, 4);
    return lo | (uint64_t{hi} << (8 * (n - 4)));
  }
  if (n >= 2) {
    uint16_t lo, hi;
    std::memcpy(&lo, p, 2);
    std::memcpy(&hi, p + n - 2, 2);
    return lo | (uint64_t{hi} << (8 * (n - 2)));
  }
  return p[0];
}

// Sets the high bit of each byte of `w` that a JSON string cannot carry
// as is: controls (< 0x20), '"', '\\' and non-ASCII (>= 0x80, to be
// checked as UTF-8); exact per byte, as the sums on 7-bit values below
// never carry into the next byte.
inline uint64_t SpecialBytes(uint64_t w) {
  constexpr uint64_t kLow7 = kOnes * 0x7f;
  uint64_t low7 = w & kLow7;
  uint64_t not_quote = (low7 ^ (kOnes * '"')) + kLow7;       // high bit: low7 != '"'
  uint64_t not_backslash = (low7 ^ (kOnes * '\\')) + kLow7;  // high bit: low7 != '\\'
  uint64_t not_control = low7 + kOnes * (0x80 - 0x20);       // high bit: low7 >= 0x20
  return ~(not_quote & not_backslash & not_control & ~w) & kHighBits;
}

// Index of the first flagged byte of a non-zero SpecialBytes result
// (little-endian: the first byte in memory is the lowest).
inline size_t FirstSpecial(uint64_t special) {
  return static_cast<size_t>(__builtin_ctzll(special)) >> 3;
}

// Byte -> its two hex characters, built once from the SDK's hex::Encode (the
// one hex codec): ids are written inline from this table, two bytes copied
// per byte, which callgrind counts at ~190 instructions a span fewer than
// three out-of-line hex::Encode calls (docs/benchmarks.md).
const std::array<char, 512> kHexPairs = [] {
  std::array<char, 512> t{};
  for (int b = 0; b < 256; ++b) {
    const uint8_t byte = static_cast<uint8_t>(b);
    hex::Encode(&byte, 1, &t[2 * b]);
  }
  return t;
}();

constexpr std::array<bool, 256> kSpecialByte = [] {
  std::array<bool, 256> t{};
  for (int c = 0; c < 256; ++c) t[c] = c < 0x20 || c == '"' || c == '\\' || c >= 0x80;
  return t;
}();

// The 8 decimal digits of v < 10^8, leading zeros included, as byte values
// 0-9 in a word whose first byte in memory (little-endian) is the most
// significant digit: two 4-digit halves in 32-bit lanes, then 2-digit
// quarters in 16-bit lanes, then digits in bytes.
inline uint64_t EightDigits(uint32_t v) {
  uint64_t x = v;
  uint64_t high4 = (x * 109951163) >> 40;  // x / 10000
  uint64_t lanes4 = high4 | ((x - high4 * 10000) << 32);
  uint64_t high2 = ((lanes4 * 10486) >> 20) & 0x0000007f0000007full;  // lane / 100
  uint64_t lanes2 = high2 | ((lanes4 - high2 * 100) << 16);
  uint64_t high1 = ((lanes2 * 103) >> 10) & 0x000f000f000f000full;  // lane / 10
  return high1 | ((lanes2 - high1 * 10) << 8);
}

// "00" to "99".
constexpr std::array<char, 200> kDecimalPairs = [] {
  std::array<char, 200> t{};
  for (int i = 0; i < 100; ++i) {
    t[2 * i] = static_cast<char>('0' + i / 10);
    t[2 * i + 1] = static_cast<char>('0' + i % 10);
  }
  return t;
}();

// Writes v (< 10^8) without leading zeros; stores 8 bytes. Up to three
// digits (a span's flags, kinds, codes, small counts) from a table: ~25
// instructions fewer than the eight-digit path (callgrind, tenth pass in
// docs/benchmarks.md).
inline char* WriteUpTo8Digits(char* p, uint32_t v) {
  if (v < 10) {
    *p = static_cast<char>('0' + v);
    return p + 1;
  }
  if (v < 100) {
    std::memcpy(p, &kDecimalPairs[2 * v], 2);
    return p + 2;
  }
  if (v < 1000) {
    const uint32_t high = v / 100;
    *p = static_cast<char>('0' + high);
    std::memcpy(p + 1, &kDecimalPairs[2 * (v - 100 * high)], 2);
    return p + 3;
  }
  uint64_t digits = EightDigits(v);
  // Leading zero digits are the low zero bytes (digits != 0 as v >= 10).
  size_t zeros = static_cast<size_t>(__builtin_ctzll(digits)) >> 3;
  Store64(p, (digits >> (8 * zeros)) + kOnes * '0');
  return p + 8 - zeros;
}

// Room a number needs: 20 digits, a sign, and slack for 8-byte stores.
constexpr size_t kNumberRoom = 32;

// Writes v in decimal, as std::to_chars does; needs kNumberRoom bytes.
inline char* WriteUint(char* p, uint64_t v) {
  if constexpr (kLittleEndian) {
    constexpr uint64_t k1e8 = 100000000;
    if (v < k1e8) return WriteUpTo8Digits(p, static_cast<uint32_t>(v));
    uint64_t high = v / k1e8;
    auto low = static_cast<uint32_t>(v - high * k1e8);
    if (high < k1e8) {
      p = WriteUpTo8Digits(p, static_cast<uint32_t>(high));
    } else {
      uint64_t top = high / k1e8;  // < 1845
      p = WriteUpTo8Digits(p, static_cast<uint32_t>(top));
      Store64(p, EightDigits(static_cast<uint32_t>(high - top * k1e8)) + kOnes * '0');
      p += 8;
    }
    Store64(p, EightDigits(low) + kOnes * '0');
    return p + 8;
  } else {
    return std::to_chars(p, p + kNumberRoom, v).ptr;
  }
}

inline char* WriteInt(char* p, int64_t v) {
  if (v < 0) {
    *p++ = '-';
    return WriteUint(p, 0 - static_cast<uint64_t>(v));
  }
  return WriteUint(p, static_cast<uint64_t>(v));
}

// A typical span (a handful of attributes, maybe an event) takes 500-1000
// bytes of JSON; the writer grows past this estimate as needed.
constexpr size_t kJsonBytesPerSpan = 768;

class JsonWriter {
 public:
  // Reserves `expected` more bytes up front (capacity only).
  JsonWriter(std::string& out, size_t expected) : out_(out) {
    out_.reserve(out_.size() + expected);
    p_ = end_ = out_.data() + out_.size();
  }
  ~JsonWriter() { out_.resize(static_cast<size_t>(p_ - out_.data())); }
  JsonWriter(const JsonWriter&) = delete;
  JsonWriter& operator=(const JsonWriter&) = delete;

  // A string literal (without its terminating NUL).
  template <size_t N>
  [[gnu::always_inline]] void Raw(const char (&s)[N]) {
    Ensure(N - 1);
    std::memcpy(p_, s, N - 1);
    p_ += N - 1;
  }
  [[gnu::always_inline]] void Char(char c) {
    Ensure(1);
    *p_++ = c;
  }
  // Bytes that are JSON already (an attribute block's cached encoding).
  void Json(std::string_view s) {
    Ensure(s.size());
    std::memcpy(p_, s.data(), s.size());
    p_ += s.size();
  }
  void Bool(bool v) {
    if (v) {
      Raw("true");
    } else {
      Raw("false");
    }
  }
  // A JSON string: invalid UTF-8 becomes U+FFFD (as utf8::Sanitize does),
  // then '"', '\\' and controls are escaped. With `prefix` (a literal)
  // written first, under the same bounds check.
  template <size_t N>
  void String(const char (&prefix)[N], std::string_view s) {
    Ensure(N - 1 + s.size() + kStringSlack);
    std::memcpy(p_, prefix, N - 1);
    p_ = Quoted(p_ + N - 1, s);
  }
  // An attribute key: as String, but a key known to need no escaping
  // (AttributeKey::plain, decided when it was made) is copied as it is.
  template <size_t N>
  void Key(const char (&prefix)[N], const AttributeKey& key) {
    if (!key.plain()) return String(prefix, key.view());
    Ensure(N - 1 + key.size() + 2);
    char* p = p_;
    std::memcpy(p, prefix, N - 1);
    p += N - 1;
    *p++ = '"';
    std::memcpy(p, key.data(), key.size());
    p += key.size();
    *p++ = '"';
    p_ = p;
  }
  // `prefix` (a literal) then the n bytes as a quoted lower-case hex string.
  template <size_t n, size_t N>
  void Hex(const char (&prefix)[N], const std::array<uint8_t, n>& bytes) {
    Ensure(N - 1 + 2 * n + 2);
    char* p = p_;
    std::memcpy(p, prefix, N - 1);
    p += N - 1;
    *p++ = '"';
#pragma GCC unroll 16
    for (size_t i = 0; i < n; ++i) std::memcpy(p + 2 * i, &kHexPairs[2 * size_t{bytes[i]}], 2);
    p += 2 * n;
    *p++ = '"';
    p_ = p;
  }
  // Hex for an id that repeats from span to span: a batch's spans of one
  // trace (its id) and siblings (their parent's). The last id's characters
  // are kept and copied when it comes again: ~45 instructions fewer for a
  // trace id (callgrind, tenth pass in docs/benchmarks.md).
  template <size_t n>
  struct HexMemo {
    std::array<uint8_t, n> bytes{};
    char hex[2 * n] = {};
    bool valid = false;
  };
  template <size_t n, size_t N>
  void HexRepeated(const char (&prefix)[N], const std::array<uint8_t, n>& bytes, HexMemo<n>& memo) {
    if (memo.valid && memo.bytes == bytes) {
      Ensure(N - 1 + 2 * n + 2);
      char* p = p_;
      std::memcpy(p, prefix, N - 1);
      p += N - 1;
      *p++ = '"';
      std::memcpy(p, memo.hex, 2 * n);
      p += 2 * n;
      *p++ = '"';
      p_ = p;
      return;
    }
    Hex(prefix, bytes);
    memo.bytes = bytes;
    std::memcpy(memo.hex, p_ - 1 - 2 * n, 2 * n);  // before the closing quote
    memo.valid = true;
  }
  template <size_t N>
  void TraceId(const char (&prefix)[N], const std::array<uint8_t, 16>& bytes) {
    HexRepeated(prefix, bytes, trace_id_memo_);
  }
  template <size_t N>
  void ParentSpanId(const char (&prefix)[N], const std::array<uint8_t, 8>& bytes) {
    HexRepeated(prefix, bytes, parent_id_memo_);
  }

  // `prefix` (a literal) then the number, with one bounds check.
  template <size_t N>
  void Uint(const char (&prefix)[N], uint64_t v) {
    Ensure(N - 1 + kNumberRoom);
    std::memcpy(p_, prefix, N - 1);
    p_ = WriteUint(p_ + N - 1, v);
  }
  // 64-bit integers are decimal strings in OTLP/JSON.
  template <size_t N>
  void QuotedUint(const char (&prefix)[N], uint64_t v) {
    Quoted(prefix, [v](char* p) { return WriteUint(p, v); });
  }
  // A time in ns since the epoch, as QuotedUint writes it. The digits of
  // its seconds are those of the time written before, mostly (a span's two
  // times, a batch's spans): they are kept, and only the nine digits of the
  // nanoseconds are made. The proxy's JSON export fell from 1,074 to 967
  // instructions a span with it (callgrind, ninth pass in
  // docs/benchmarks.md).
  template <size_t N>
  void QuotedTime(const char (&prefix)[N], uint64_t t) {
    if constexpr (kLittleEndian) {
      constexpr uint64_t k1e9 = 1000000000;
      constexpr uint32_t k1e8 = 100000000;
      const uint64_t secs = t / k1e9;
      if (secs == 0) return QuotedUint(prefix, t);  // no leading zeros to keep
      if (secs != secs_) {
        secs_ = secs;
        secs_len_ = static_cast<size_t>(WriteUint(secs_digits_, secs) - secs_digits_);
      }
      const auto nanos = static_cast<uint32_t>(t - secs * k1e9);
      Quoted(prefix, [&](char* p) {
        std::memcpy(p, secs_digits_, 16);  // at most 11 digits, 16 copied
        p += secs_len_;
        *p++ = static_cast<char>('0' + nanos / k1e8);
        Store64(p, EightDigits(nanos % k1e8) + kOnes * '0');
        return p + 8;
      });
    } else {
      QuotedUint(prefix, t);
    }
  }
  template <size_t N>
  void QuotedInt(const char (&prefix)[N], int64_t v) {
    Quoted(prefix, [v](char* p) { return WriteInt(p, v); });
  }
  template <size_t N, typename WriteNumber>
  void Quoted(const char (&prefix)[N], WriteNumber write) {
    Ensure(N + 1 + kNumberRoom);
    std::memcpy(p_, prefix, N - 1);
    char* p = p_ + N - 1;
    *p++ = '"';
    p = write(p);
    *p++ = '"';
    p_ = p;
  }
  void Double(double d) {
    if (std::isnan(d)) {
      Raw("\"NaN\"");
    } else if (std::isinf(d)) {
      if (d > 0) {
        Raw("\"Infinity\"");
      } else {
        Raw("\"-Infinity\"");
      }
    } else {
      Ensure(kNumberRoom);
      p_ = std::to_chars(p_, p_ + kNumberRoom, d).ptr;
    }
  }

 private:
  // Grows the string in steps of this size: the largest memset below glibc's
  // rep-stosb threshold (2048 bytes), and the fresh bytes are written soon
  // after. 1024 made it grow about once a span, ~90 instructions a step
  // besides the memset (the proxy's profile, ninth pass in
  // docs/benchmarks.md).
  static constexpr size_t kGrowStep = 2016;
  // Room String asks for beyond the prefix and the input: the two quotes,
  // and slack for an 8-byte store and an escape (see QuotedSlow).
  static constexpr size_t kStringSlack = 16;

  [[gnu::always_inline]] void Ensure(size_t n) {
    if (static_cast<size_t>(end_ - p_) < n) [[unlikely]] {
      Grow(n);
    }
  }
  [[gnu::noinline]] void Grow(size_t n) {
    auto used = static_cast<size_t>(p_ - out_.data());
    out_.resize(used + std::max(n, kGrowStep));
    p_ = out_.data() + used;
    end_ = out_.data() + out_.size();
  }
  char* Quoted(char* p, std::string_view s);
  [[gnu::noinline]] char* QuotedLong(char* p, const unsigned char* s, size_t n);
  [[gnu::noinline]] char* QuotedSlow(char* p, const unsigned char* s, size_t n, size_t i);
  static char* Escape(char* p, unsigned char c);

  std::string& out_;
  char* p_;
  char* end_;
  // QuotedTime's seconds and their digits (WriteUint stores up to 32 bytes).
  uint64_t secs_ = 0;
  size_t secs_len_ = 0;
  char secs_digits_[kNumberRoom] = {};
  HexMemo<16> trace_id_memo_;
  HexMemo<8> parent_id_memo_;
};

// Writes the escape for an ASCII byte that needs one (at most 6 bytes).
char* JsonWriter::Escape(char* p, unsigned char c) {
  char e = 0;
  switch (c) {
    case '"':
      e = '"';
      break;
    case '\\':
      e = '\\';
      break;
    case '\n':
      e = 'n';
      break;
    case '\r':
      e = 'r';
      break;
    case '\t':
      e = 't';
      break;
    case '\b':
      e = 'b';
      break;
    case '\f':
      e = 'f';
      break;
    default:
      std::memcpy(p, "\\u00", 4);
      hex::Encode(&c, 1, p + 4);
      return p + 6;
  }
  p[0] = '\\';
  p[1] = e;
  return p + 2;
}

// Writes `sv` quoted at p (String has made room). The fast path: bytes
// that need no care are copied a word at a time, the output mirroring the
// input (p[i] = s[i]), up to the first byte that does, from where
// QuotedSlow goes on. Strings of up to 16 bytes (most keys and values) take
// one or two possibly overlapping words; longer ones go to QuotedLong.
char* JsonWriter::Quoted(char* p, std::string_view sv) {
  const auto* s = reinterpret_cast<const unsigned char*>(sv.data());
  const size_t n = sv.size();
  *p++ = '"';
  if constexpr (kLittleEndian) {
    if (n > 16) return QuotedLong(p, s, n);
    if (n >= 8) {
      uint64_t head = Load64(s);
      uint64_t tail = Load64(s + n - 8);
      uint64_t head_special = SpecialBytes(head);
      uint64_t tail_special = SpecialBytes(tail);
      Store64(p, head);
      Store64(p + n - 8, tail);
      if ((head_special | tail_special) != 0) [[unlikely]] {
        size_t i =
            head_special != 0 ? FirstSpecial(head_special) : n - 8 + FirstSpecial(tail_special);
        return QuotedSlow(p + i, s, n, i);
      }
    } else if (n != 0) {
      uint64_t w = LoadShort(s, n);
      uint64_t special = SpecialBytes(w) & ((uint64_t{1} << (8 * n)) - 1);
      Store64(p, w);  // within kStringSlack
      if (special != 0) [[unlikely]] {
        size_t i = FirstSpecial(special);
        return QuotedSlow(p + i, s, n, i);
      }
    }
  } else {
    for (size_t i = 0; i < n; ++i) {
      if (kSpecialByte[s[i]]) return QuotedSlow(p + i, s, n, i);
      p[i] = static_cast<char>(s[i]);
    }
  }
  p += n;
  *p++ = '"';
  return p;
}

// Quoted for n > 16 (little-endian only).
char* JsonWriter::QuotedLong(char* p, const unsigned char* s, size_t n) {
#if defined(__SSE2__)
  // Sixteen bytes a step (x86-64 always has SSE2): the span names and ids
  // this path mostly sees (17-32 bytes) took ~100 instructions a string a
  // word at a time, ~40 so (callgrind, tenth pass in docs/benchmarks.md).
  auto copy16 = [&](size_t at) -> char* {
    const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(s + at));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(p + at), v);
    const __m128i control = _mm_cmpeq_epi8(_mm_min_epu8(v, _mm_set1_epi8(0x1f)), v);  // <= 0x1f
    const __m128i quote = _mm_cmpeq_epi8(v, _mm_set1_epi8('"'));
    const __m128i backslash = _mm_cmpeq_epi8(v, _mm_set1_epi8('\\'));
    // The high bit of each byte: a control, '"', '\\', or non-ASCII (v's own).
    const auto special = static_cast<uint32_t>(
        _mm_movemask_epi8(_mm_or_si128(_mm_or_si128(control, quote), _mm_or_si128(backslash, v))));
    if (special == 0) [[likely]]
      return nullptr;
    at += static_cast<size_t>(__builtin_ctz(special));
    return QuotedSlow(p + at, s, n, at);
  };
  size_t i = 0;
  for (; i + 16 <= n; i += 16) {
    if (char* end = copy16(i)) return end;
  }
  if (i < n) {
    // The last 16 bytes again: those before i are known to be clean.
    if (char* end = copy16(n - 16)) return end;
  }
  p += n;
  *p++ = '"';
  return p;
#else
  // Copies the 8 bytes at `at`; at the first byte that needs care, hands the
  // rest to QuotedSlow and returns where it ended (nullptr: all 8 clean).
  auto copy_word = [&](size_t at) -> char* {
    uint64_t w = Load64(s + at);
    uint64_t special = SpecialBytes(w);
    Store64(p + at, w);
    if (special == 0) [[likely]]
      return nullptr;
    at += FirstSpecial(special);
    return QuotedSlow(p + at, s, n, at);
  };
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    if (char* end = copy_word(i)) return end;
  }
  if (i < n) {
    // The last 8 bytes again: those before i are known to be clean.
    if (char* end = copy_word(n - 8)) return end;
  }
  p += n;
  *p++ = '"';
  return p;
#endif
}

// Continues Quoted from s[i], a byte that needs care, to be written at p.
char* JsonWriter::QuotedSlow(char* p, const unsigned char* s, size_t n, size_t i) {
  for (;;) {
    // s[i] needs care. Room for the rest of the input as is, the closing
    // quote, an 8-byte store and this byte's expansion (6 at most).
    p_ = p;
    Ensure(n - i + kStringSlack);
    p = p_;
    unsigned char c = s[i];
    if (c < 0x80) {
      p = Escape(p, c);
      ++i;
    } else if (size_t len = utf8::SequenceLength(s + i, n - i); len == 0) {
      std::memcpy(p, "\xef\xbf\xbd", 3);  // U+FFFD for the invalid byte
      p += 3;
      ++i;
    } else {
      for (size_t j = 0; j < len; ++j) p[j] = static_cast<char>(s[i + j]);
      p += len;
      i += len;
    }
    // Copy bytes that need no care up to the next one that does.
    if constexpr (kLittleEndian) {
      uint64_t special = 0;
      while (i + 8 <= n) {
        uint64_t w = Load64(s + i);
        special = SpecialBytes(w);
        Store64(p, w);
        if (special != 0) break;
        i += 8;
        p += 8;
      }
      if (special == 0) {
        size_t rest = n - i;  // < 8
        if (rest == 0) break;
        uint64_t w = LoadShort(s + i, rest);
        special = SpecialBytes(w) & ((uint64_t{1} << (8 * rest)) - 1);
        Store64(p, w);
        if (special == 0) {
          p += rest;
          break;
        }
      }
      size_t k = FirstSpecial(special);
      i += k;
      p += k;
    } else {
      while (i < n && !kSpecialByte[s[i]]) *p++ = static_cast<char>(s[i++]);
      if (i == n) break;
    }
  }
  *p++ = '"';
  return p;
}

template <typename T>
void JsonScalar(JsonWriter& w, const T& v) {
  if constexpr (std::is_same_v<T, bool>) {
    w.Raw("{\"boolValue\":");
    w.Bool(v);
  } else if constexpr (std::is_same_v<T, int64_t>) {
    w.QuotedInt("{\"intValue\":", v);
  } else if constexpr (std::is_same_v<T, double>) {
    w.Raw("{\"doubleValue\":");
    w.Double(v);
  } else {
    w.String("{\"stringValue\":", v);
  }
  w.Char('}');
}

void JsonAnyValue(JsonWriter& w, const AttributeValue& value) {
  std::visit(
      [&](const auto& v) {
        using V = std::decay_t<decltype(v)>;
        if constexpr (std::is_same_v<V, bool> || std::is_same_v<V, int64_t> ||
                      std::is_same_v<V, double> || std::is_same_v<V, std::string>) {
          JsonScalar(w, v);
        } else {
          w.Raw("{\"arrayValue\":{\"values\":[");
          bool first = true;
          for (const auto& e : v) {
            if (!first) w.Char(',');
            first = false;
            if constexpr (std::is_same_v<V, std::vector<bool>>) {
              JsonScalar(w, static_cast<bool>(e));
            } else {
              JsonScalar(w, e);
            }
          }
          w.Raw("]}}");
        }
      },
      value);
}

// The entries of an attribute list, comma-separated, with a leading comma
// unless `first`.
void JsonAttributeEntries(JsonWriter& w, const Attributes& attributes, bool first) {
  for (const auto& kv : attributes) {
    if (first) {
      w.Key("{\"key\":", kv.key);
      first = false;
    } else {
      w.Key(",{\"key\":", kv.key);
    }
    // The common scalar types with their prefix in one piece.
    if (const auto* str = std::get_if<std::string>(&kv.value)) {
      w.String(",\"value\":{\"stringValue\":", *str);
      w.Raw("}}");
    } else if (const auto* i = std::get_if<int64_t>(&kv.value)) {
      w.QuotedInt(",\"value\":{\"intValue\":", *i);
      w.Raw("}}");
    } else {
      w.Raw(",\"value\":");
      JsonAnyValue(w, kv.value);
      w.Char('}');
    }
  }
}

void JsonAttributes(JsonWriter& w, const Attributes& attributes) {
  w.Raw("\"attributes\":[");
  JsonAttributeEntries(w, attributes, /*first=*/true);
  w.Char(']');
}

// An attribute block's entries, as JsonAttributeEntries writes them first.
void EncodeJsonBlock(const Attributes& attributes, std::string& out) {
  JsonWriter w(out, attributes.size() * 64);
  JsonAttributeEntries(w, attributes, /*first=*/true);
}

// A span's attributes: its shared block's (encoded once per block), then
// its own.
void JsonSpanAttributes(JsonWriter& w, const SpanData& s) {
  w.Raw(",\"attributes\":[");
  bool first = true;
  if (s.shared_attributes && !s.shared_attributes->empty()) {
    w.Json(s.shared_attributes->Encoded(AttributeBlock::Format::kOtlpJson, &EncodeJsonBlock));
    first = false;
  }
  JsonAttributeEntries(w, s.attributes, first);
  w.Char(']');
  if (s.dropped_attributes_count)
    w.Uint(",\"droppedAttributesCount\":", s.dropped_attributes_count);
}

// ,"attributes":[...] and, when some were dropped, how many.
void JsonAttributesAndDropped(JsonWriter& w, const Attributes& attributes, uint32_t dropped) {
  w.Char(',');
  JsonAttributes(w, attributes);
  if (dropped) w.Uint(",\"droppedAttributesCount\":", dropped);
}

void JsonSpan(JsonWriter& w, const SpanData& s) {
  w.TraceId("{\"traceId\":", s.context.trace_id().bytes());
  w.Hex(",\"spanId\":", s.context.span_id().bytes());
  if (!s.context.trace_state().empty()) {
    w.String(",\"traceState\":", s.context.trace_state().ToHeader());
  }
  if (s.parent_span_id.IsValid()) {
    w.ParentSpanId(",\"parentSpanId\":", s.parent_span_id.bytes());
  }
  w.Uint(",\"flags\":", SpanFlags(s));
  w.String(",\"name\":", s.name);
  w.Uint(",\"kind\":", static_cast<uint64_t>(s.kind));
  w.QuotedTime(",\"startTimeUnixNano\":", s.start_unix_nano);
  w.QuotedTime(",\"endTimeUnixNano\":", s.end_unix_nano);
  JsonSpanAttributes(w, s);
  if (!s.events.empty()) {
    w.Raw(",\"events\":[");
    bool first = true;
    for (const auto& e : s.events) {
      if (!first) w.Char(',');
      first = false;
      w.QuotedTime("{\"timeUnixNano\":", e.time_unix_nano);
      w.String(",\"name\":", e.name);
      JsonAttributesAndDropped(w, e.attributes, e.dropped_attributes_count);
      w.Char('}');
    }
    w.Char(']');
  }
  if (s.dropped_events_count) {
    w.Uint(",\"droppedEventsCount\":", s.dropped_events_count);
  }
  if (!s.links.empty()) {
    w.Raw(",\"links\":[");
    bool first = true;
    for (const auto& l : s.links) {
      if (!first) w.Char(',');
      first = false;
      w.Hex("{\"traceId\":", l.context.trace_id().bytes());
      w.Hex(",\"spanId\":", l.context.span_id().bytes());
      if (!l.context.trace_state().empty()) {
        w.String(",\"traceState\":", l.context.trace_state().ToHeader());
      }
      JsonAttributesAndDropped(w, l.attributes, l.dropped_attributes_count);
      w.Uint(",\"flags\":", LinkFlags(l));
      w.Char('}');
    }
    w.Char(']');
  }
  if (s.dropped_links_count) {
    w.Uint(",\"droppedLinksCount\":", s.dropped_links_count);
  }
  if (s.status != StatusCode::kUnset || !s.status_message.empty()) {
    w.Raw(",\"status\":{");
    bool need_comma = false;
    if (!s.status_message.empty()) {
      w.String("\"message\":", s.status_message);
      need_comma = true;
    }
    if (s.status != StatusCode::kUnset) {
      if (need_comma) w.Char(',');
      w.Uint("\"code\":", static_cast<uint64_t>(s.status));
    }
    w.Char('}');
  }
  w.Char('}');
}

// ---------------------------------------------------------------------------
// Protobuf reading (responses).

class PbReader {
 public:
  explicit PbReader(std::string_view data) : p_(data.data()), end_(data.data() + data.size()) {}
  bool done() const { return p_ == end_; }
  bool Varint(uint64_t& v) {
    v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (p_ == end_) return false;
      uint8_t b = static_cast<uint8_t>(*p_++);
      v |= static_cast<uint64_t>(b & 0x7f) << shift;
      if (!(b & 0x80)) return true;
    }
    return false;
  }
  // Reads one field; for length-delimited fields `bytes` is set.
  bool Next(uint32_t& field, uint32_t& wire, uint64_t& value, std::string_view& bytes) {
    uint64_t tag;
    if (!Varint(tag)) return false;
    field = static_cast<uint32_t>(tag >> 3);
    wire = static_cast<uint32_t>(tag & 7);
    switch (wire) {
      case kVarint:
        return Varint(value);
      case kFixed64:
        if (end_ - p_ < 8) return false;
        std::memcpy(&value, p_, 8);
        p_ += 8;
        return true;
      case kFixed32: {
        if (end_ - p_ < 4) return false;
        uint32_t v32;
        std::memcpy(&v32, p_, 4);
        value = v32;
        p_ += 4;
        return true;
      }
      case kLen: {
        uint64_t n;
        if (!Varint(n) || n > static_cast<uint64_t>(end_ - p_)) return false;
        bytes = std::string_view(p_, n);
        p_ += n;
        return true;
      }
      default:
        return false;
    }
  }

 private:
  const char* p_;
  const char* end_;
};

}  // namespace

uint32_t SpanFlags(const SpanData& span) {
  return span.context.flags() | kSpanFlagsHasIsRemote |
         (span.parent_is_remote ? kSpanFlagsIsRemote : 0u);
}

uint32_t LinkFlags(const Link& link) {
  return link.context.flags() | kSpanFlagsHasIsRemote |
         (link.context.IsRemote() ? kSpanFlagsIsRemote : 0u);
}

void EncodeProtobuf(SpanBatch spans, std::string& out) {
  out.reserve(out.size() + 64 + spans.size() * 256);
  PbWriter w(out);
  for (const auto& rg : Group(spans)) {
    size_t rs = w.Begin(1, 3);   // ExportTraceServiceRequest.resource_spans
    size_t res = w.Begin(1, 2);  // ResourceSpans.resource
    PbAttributes(w, 1, rg.resource->attributes());
    w.End(res, 2);
    for (const auto& sg : rg.scopes) {
      size_t ss = w.Begin(2, 3);  // ResourceSpans.scope_spans
      size_t sc = w.Begin(1, 1);  // ScopeSpans.scope
      w.StringFieldNonEmpty(1, sg.scope->name);
      w.StringFieldNonEmpty(2, sg.scope->version);
      PbAttributes(w, 3, sg.scope->attributes);
      w.End(sc, 1);
      for (const SpanData* s : sg.spans) PbSpan(w, *s);
      w.StringFieldNonEmpty(3, sg.scope->schema_url);
      w.End(ss, 3);
    }
    w.StringFieldNonEmpty(3, rg.resource->schema_url());
    w.End(rs, 3);
  }
}

void EncodeJson(SpanBatch spans, std::string& out) {
  JsonWriter w(out, 64 + spans.size() * kJsonBytesPerSpan);
  w.Raw("{\"resourceSpans\":[");
  bool first_r = true;
  for (const auto& rg : Group(spans)) {
    if (!first_r) w.Char(',');
    first_r = false;
    w.Raw("{\"resource\":{");
    JsonAttributes(w, rg.resource->attributes());
    w.Raw("},\"scopeSpans\":[");
    bool first_s = true;
    for (const auto& sg : rg.scopes) {
      if (!first_s) w.Char(',');
      first_s = false;
      w.String("{\"scope\":{\"name\":", sg.scope->name);
      if (!sg.scope->version.empty()) {
        w.String(",\"version\":", sg.scope->version);
      }
      if (!sg.scope->attributes.empty()) {
        w.Char(',');
        JsonAttributes(w, sg.scope->attributes);
      }
      w.Raw("},\"spans\":[");
      bool first = true;
      for (const SpanData* s : sg.spans) {
        if (!first) w.Char(',');
        first = false;
        JsonSpan(w, *s);
      }
      w.Char(']');
      if (!sg.scope->schema_url.empty()) {
        w.String(",\"schemaUrl\":", sg.scope->schema_url);
      }
      w.Char('}');
    }
    w.Char(']');
    if (!rg.resource->schema_url().empty()) {
      w.String(",\"schemaUrl\":", rg.resource->schema_url());
    }
    w.Char('}');
  }
  w.Raw("]}");
}

std::optional<PartialSuccess> DecodeResponseProtobuf(std::string_view body) {
  PartialSuccess result;
  PbReader r(body);
  while (!r.done()) {
    uint32_t field, wire;
    uint64_t value = 0;
    std::string_view bytes;
    if (!r.Next(field, wire, value, bytes)) return std::nullopt;
    if (field == 1 && wire == kLen) {
      PbReader ps(bytes);
      while (!ps.done()) {
        if (!ps.Next(field, wire, value, bytes)) return std::nullopt;
        if (field == 1 && wire == kVarint) result.rejected_spans = static_cast<int64_t>(value);
        if (field == 2 && wire == kLen) result.error_message = std::string(bytes);
      }
    }
  }
  return result;
}

std::optional<PartialSuccess> DecodeResponseJson(std::string_view body) {
  PartialSuccess result;
  if (body.find_first_not_of(" \t\r\n") == std::string_view::npos) return result;
  auto j = nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) return std::nullopt;
  auto it = j.find("partialSuccess");
  if (it == j.end() || !it->is_object()) return result;
  auto rs = it->find("rejectedSpans");
  if (rs != it->end()) {
    if (rs->is_number_integer()) {
      result.rejected_spans = rs->get<int64_t>();
    } else if (rs->is_string()) {
      const std::string& s = rs->get_ref<const std::string&>();
      std::from_chars(s.data(), s.data() + s.size(), result.rejected_spans);
    }
  }
  auto em = it->find("errorMessage");
  if (em != it->end() && em->is_string()) result.error_message = em->get<std::string>();
  return result;
}

std::optional<RpcStatus> DecodeRpcStatus(std::string_view body) {
  RpcStatus st;
  PbReader r(body);
  while (!r.done()) {
    uint32_t field, wire;
    uint64_t value = 0;
    std::string_view bytes;
    if (!r.Next(field, wire, value, bytes)) return std::nullopt;
    if (field == 1 && wire == kVarint) st.code = static_cast<int32_t>(value);
    if (field == 2 && wire == kLen) st.message = std::string(bytes);
    if (field == 3 && wire == kLen) {  // google.protobuf.Any
      std::string_view type_url, any_value;
      PbReader any(bytes);
      while (!any.done()) {
        if (!any.Next(field, wire, value, bytes)) return std::nullopt;
        if (field == 1 && wire == kLen) type_url = bytes;
        if (field == 2 && wire == kLen) any_value = bytes;
      }
      if (type_url.ends_with("/google.rpc.RetryInfo")) {
        int64_t ms = 0;
        PbReader ri(any_value);
        while (!ri.done()) {
          if (!ri.Next(field, wire, value, bytes)) return std::nullopt;
          if (field == 1 && wire == kLen) {  // google.protobuf.Duration
            PbReader d(bytes);
            while (!d.done()) {
              if (!d.Next(field, wire, value, bytes)) return std::nullopt;
              if (field == 1 && wire == kVarint) ms += static_cast<int64_t>(value) * 1000;
              if (field == 2 && wire == kVarint) ms += static_cast<int64_t>(value) / 1000000;
            }
          }
        }
        st.retry_delay_ms = ms;
      }
    }
  }
  return st;
}

}  // namespace prism::tracing::otlp
