// W3C Trace Context (traceparent/tracestate, Level 2) and W3C Baggage
// propagators, the composite propagator and OTEL_PROPAGATORS.

#include "prism/tracing/propagation.h"

#include <array>
#include <unordered_map>
#include <utility>

#include "prism/tracing/carriers.h"
#include "prism/tracing/diagnostics.h"
#include "prism/tracing/env.h"

namespace prism::tracing {

namespace internal {
bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    char x = a[i];
    char y = b[i];
    if (x >= 'A' && x <= 'Z') x = static_cast<char>(x - 'A' + 'a');
    if (y >= 'A' && y <= 'Z') y = static_cast<char>(y - 'A' + 'a');
    if (x != y) return false;
  }
  return true;
}
}  // namespace internal

namespace {

constexpr std::string_view kTraceparent = "traceparent";
constexpr std::string_view kTracestate = "tracestate";
constexpr std::string_view kBaggage = "baggage";

// "00-" 32 "-" 16 "-" 2
constexpr size_t kTraceparentSize = 55;
constexpr size_t kTraceIdOffset = 3;
constexpr size_t kSpanIdOffset = 36;
constexpr size_t kFlagsOffset = 53;
// The trace-flags bits this implementation knows (sampled, random). The
// others are reserved: writers must send them as zero.
constexpr uint8_t kKnownFlags = trace_flags::kSampled | trace_flags::kRandom;

constexpr bool IsOws(char c) { return c == ' ' || c == '\t'; }

std::string_view TrimOws(std::string_view s) {
  size_t b = 0;
  size_t e = s.size();
  while (b < e && IsOws(s[b])) ++b;
  while (e > b && IsOws(s[e - 1])) --e;
  return s.substr(b, e - b);
}

// ---- W3C Baggage grammar --------------------------------------------------
//   baggage-string = list-member 0*179( OWS "," OWS list-member )
//   list-member    = key OWS "=" OWS value *( OWS ";" OWS property )
//   property       = key OWS "=" OWS value / key OWS
//   key            = token                   ; RFC 9110 5.6.2
//   value          = *baggage-octet          ; percent-encoded UTF-8
//   baggage-octet  = %x21 / %x23-2B / %x2D-3A / %x3C-5B / %x5D-7E

constexpr bool IsTchar(unsigned char c) {
  if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) return true;
  switch (c) {
    case '!':
    case '#':
    case '$':
    case '%':
    case '&':
    case '\'':
    case '*':
    case '+':
    case '-':
    case '.':
    case '^':
    case '_':
    case '`':
    case '|':
    case '~':
      return true;
    default:
      return false;
  }
}

constexpr bool IsBaggageOctet(unsigned char c) {
  return c == 0x21 || (c >= 0x23 && c <= 0x2b) || (c >= 0x2d && c <= 0x3a) ||
         (c >= 0x3c && c <= 0x5b) || (c >= 0x5d && c <= 0x7e);
}

bool IsToken(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    if (!IsTchar(static_cast<unsigned char>(c))) return false;
  }
  return true;
}

bool IsBaggageValue(std::string_view s) {
  for (char c : s) {
    if (!IsBaggageOctet(static_cast<unsigned char>(c))) return false;
  }
  return true;
}

// The part after a list-member's first ';': one or more properties.
bool IsValidProperties(std::string_view props) {
  size_t pos = 0;
  while (pos <= props.size()) {
    size_t semi = props.find(';', pos);
    if (semi == std::string_view::npos) semi = props.size();
    std::string_view p = TrimOws(props.substr(pos, semi - pos));
    pos = semi + 1;
    size_t eq = p.find('=');
    if (eq == std::string_view::npos) {
      if (!IsToken(p)) return false;
    } else if (!IsToken(TrimOws(p.substr(0, eq))) || !IsBaggageValue(TrimOws(p.substr(eq + 1)))) {
      return false;
    }
  }
  return true;
}

int HexValueAnyCase(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Appends `in` to `out`, replacing every ill-formed UTF-8 subsequence with
// U+FFFD (one replacement per maximal subpart, as WHATWG Encoding does).
void AppendUtf8Sanitized(std::string_view in, std::string& out) {
  static constexpr char kReplacement[] = "\xEF\xBF\xBD";
  size_t i = 0;
  const size_t n = in.size();
  while (i < n) {
    auto b0 = static_cast<unsigned char>(in[i]);
    if (b0 < 0x80) {
      out.push_back(static_cast<char>(b0));
      ++i;
      continue;
    }
    size_t need = 0;
    unsigned char lo = 0x80;
    unsigned char hi = 0xbf;
    if (b0 >= 0xc2 && b0 <= 0xdf) {
      need = 1;
    } else if (b0 >= 0xe0 && b0 <= 0xef) {
      need = 2;
      if (b0 == 0xe0) lo = 0xa0;
      if (b0 == 0xed) hi = 0x9f;
    } else if (b0 >= 0xf0 && b0 <= 0xf4) {
      need = 3;
      if (b0 == 0xf0) lo = 0x90;
      if (b0 == 0xf4) hi = 0x8f;
    } else {
      out.append(kReplacement, 3);
      ++i;
      continue;
    }
    size_t j = i + 1;
    bool ok = true;
    for (size_t k = 0; k < need; ++k, ++j) {
      if (j >= n) {
        ok = false;
        break;
      }
      auto b = static_cast<unsigned char>(in[j]);
      unsigned char l = k == 0 ? lo : 0x80;
      unsigned char h = k == 0 ? hi : 0xbf;
      if (b < l || b > h) {
        ok = false;
        break;
      }
    }
    if (ok) {
      out.append(in.substr(i, need + 1));
    } else {
      out.append(kReplacement, 3);
    }
    i = j;
  }
}

// Percent-decodes a baggage value. False when it holds a character outside
// baggage-octet or a '%' not followed by two hex digits.
bool DecodeBaggageValue(std::string_view in, std::string& out) {
  std::string bytes;
  bytes.reserve(in.size());
  bool all_ascii = true;
  for (size_t i = 0; i < in.size(); ++i) {
    char c = in[i];
    if (!IsBaggageOctet(static_cast<unsigned char>(c))) return false;
    if (c == '%') {
      if (i + 2 >= in.size()) return false;
      int hi = HexValueAnyCase(in[i + 1]);
      int lo = HexValueAnyCase(in[i + 2]);
      if (hi < 0 || lo < 0) return false;
      c = static_cast<char>((hi << 4) | lo);
      if (static_cast<unsigned char>(c) >= 0x80) all_ascii = false;
      i += 2;
    }
    bytes.push_back(c);
  }
  if (all_ascii) {
    out = std::move(bytes);
  } else {
    out.clear();
    out.reserve(bytes.size());
    AppendUtf8Sanitized(bytes, out);
  }
  return true;
}

void AppendPercentEncoded(std::string_view value, std::string& out) {
  static constexpr char kUpperHex[] = "0123456789ABCDEF";
  for (char c : value) {
    auto b = static_cast<unsigned char>(c);
    if (IsBaggageOctet(b) && c != '%') {
      out.push_back(c);
    } else {
      out.push_back('%');
      out.push_back(kUpperHex[b >> 4]);
      out.push_back(kUpperHex[b & 0xf]);
    }
  }
}

// "key=value[;metadata]" as FormatBaggage writes it; empty when the entry
// cannot be written (its key is not a token). Metadata that is not a valid
// property list is left out.
std::string EncodeMember(const Baggage::Entry& e) {
  std::string out;
  if (!IsToken(e.key)) return out;
  out.reserve(e.key.size() + e.value.size() + e.metadata.size() + 2);
  out.append(e.key);
  out.push_back('=');
  AppendPercentEncoded(e.value, out);
  if (!e.metadata.empty() && IsValidProperties(e.metadata)) {
    out.push_back(';');
    out.append(e.metadata);
  }
  return out;
}

// ---- Propagators -----------------------------------------------------------

class W3CTraceContextPropagator final : public TextMapPropagator {
 public:
  void Inject(const Context& context, TextMapCarrier& carrier) const override {
    const SpanContext& sc = context.span_context();
    if (!sc.IsValid()) return;
    char buf[kTraceparentSize];
    w3c::FormatTraceparent(sc, buf);
    carrier.Set(kTraceparent, std::string_view(buf, sizeof(buf)));
    if (!sc.trace_state().empty()) carrier.Set(kTracestate, sc.trace_state().ToHeader());
  }

  Context Extract(const TextMapCarrier& carrier, const Context& base) const override {
    std::optional<std::string> traceparent = carrier.Get(kTraceparent);
    if (!traceparent) return base;
    // Header carriers may hand over surrounding OWS (RFC 9110 5.5).
    std::optional<SpanContext> sc = w3c::ParseTraceparent(TrimOws(*traceparent));
    if (!sc) return base;  // invalid: the caller starts a new trace
    // tracestate is parsed only with a valid traceparent; an invalid one is
    // dropped whole and never affects the traceparent.
    std::optional<std::string> tracestate = carrier.Get(kTracestate);
    if (tracestate) {
      std::optional<TraceState> state = TraceState::ParseStrict(*tracestate);
      if (state && !state->empty()) {
        return base.WithSpanContext(
            SpanContext(sc->trace_id(), sc->span_id(), sc->flags(), true, std::move(*state)));
      }
    }
    return base.WithSpanContext(std::move(*sc));
  }

  std::vector<std::string> Fields() const override {
    return {std::string(kTraceparent), std::string(kTracestate)};
  }
};

class W3CBaggagePropagator final : public TextMapPropagator {
 public:
  void Inject(const Context& context, TextMapCarrier& carrier) const override {
    if (context.baggage().empty()) return;
    std::string header = w3c::FormatBaggage(context.baggage());
    if (!header.empty()) carrier.Set(kBaggage, header);
  }

  Context Extract(const TextMapCarrier& carrier, const Context& base) const override {
    std::optional<std::string> header = carrier.Get(kBaggage);
    if (!header) return base;
    Baggage baggage = w3c::ParseBaggage(*header);
    if (baggage.empty()) return base;
    return base.WithBaggage(std::move(baggage));
  }

  std::vector<std::string> Fields() const override { return {std::string(kBaggage)}; }
};

class CompositePropagator final : public TextMapPropagator {
 public:
  explicit CompositePropagator(std::vector<std::unique_ptr<TextMapPropagator>> propagators)
      : propagators_(std::move(propagators)) {}

  void Inject(const Context& context, TextMapCarrier& carrier) const override {
    for (const auto& p : propagators_) p->Inject(context, carrier);
  }

  Context Extract(const TextMapCarrier& carrier, const Context& base) const override {
    Context context = base;
    for (const auto& p : propagators_) context = p->Extract(carrier, context);
    return context;
  }

  std::vector<std::string> Fields() const override {
    std::vector<std::string> fields;
    for (const auto& p : propagators_) {
      for (std::string& f : p->Fields()) {
        bool seen = false;
        for (const std::string& g : fields) seen = seen || g == f;
        if (!seen) fields.push_back(std::move(f));
      }
    }
    return fields;
  }

 private:
  std::vector<std::unique_ptr<TextMapPropagator>> propagators_;
};

}  // namespace

std::unique_ptr<TextMapPropagator> MakeW3CTraceContextPropagator() {
  return std::make_unique<W3CTraceContextPropagator>();
}

std::unique_ptr<TextMapPropagator> MakeW3CBaggagePropagator() {
  return std::make_unique<W3CBaggagePropagator>();
}

std::unique_ptr<TextMapPropagator> MakeCompositePropagator(
    std::vector<std::unique_ptr<TextMapPropagator>> propagators) {
  std::vector<std::unique_ptr<TextMapPropagator>> kept;
  for (auto& p : propagators) {
    if (p) kept.push_back(std::move(p));
  }
  return std::make_unique<CompositePropagator>(std::move(kept));
}

std::unique_ptr<TextMapPropagator> PropagatorFromEnvironment() {
  std::string value = env::GetEnum("OTEL_PROPAGATORS").value_or("tracecontext,baggage");
  std::vector<std::string> names;
  size_t pos = 0;
  while (pos <= value.size()) {
    size_t comma = value.find(',', pos);
    if (comma == std::string::npos) comma = value.size();
    std::string name = env::Trim(std::string_view(value).substr(pos, comma - pos));
    pos = comma + 1;
    if (!name.empty()) names.push_back(std::move(name));
  }

  for (const std::string& name : names) {
    if (name != "none") continue;
    if (names.size() > 1) {
      internal::Log(internal::LogLevel::kWarn,
                    "OTEL_PROPAGATORS=\"" + value +
                        "\": \"none\" is combined with other propagators; using none");
    }
    return MakeCompositePropagator({});
  }

  std::vector<std::unique_ptr<TextMapPropagator>> propagators;
  bool have_tracecontext = false;
  bool have_baggage = false;
  for (const std::string& name : names) {
    if (name == "tracecontext") {
      if (!have_tracecontext) propagators.push_back(MakeW3CTraceContextPropagator());
      have_tracecontext = true;
    } else if (name == "baggage") {
      if (!have_baggage) propagators.push_back(MakeW3CBaggagePropagator());
      have_baggage = true;
    } else if (name == "b3" || name == "b3multi" || name == "jaeger" || name == "xray" ||
               name == "ottrace") {
      internal::Log(internal::LogLevel::kWarn,
                    "OTEL_PROPAGATORS: propagator \"" + name + "\" is not supported; skipped");
    } else {
      internal::Log(internal::LogLevel::kWarn,
                    "OTEL_PROPAGATORS: unknown propagator \"" + name + "\"; skipped");
    }
  }
  if (propagators.size() == 1) return std::move(propagators.front());
  return MakeCompositePropagator(std::move(propagators));
}

namespace w3c {

std::optional<SpanContext> ParseTraceparent(std::string_view traceparent,
                                            std::string_view tracestate) {
  const std::string_view tp = traceparent;
  if (tp.size() < kTraceparentSize) return std::nullopt;
  uint8_t version = 0;
  if (!hex::DecodeLower(tp.substr(0, 2), &version, 1)) return std::nullopt;
  if (version == 0xff) return std::nullopt;
  if (tp[2] != '-' || tp[kSpanIdOffset - 1] != '-' || tp[kFlagsOffset - 1] != '-') {
    return std::nullopt;
  }
  if (version == 0) {
    // Version 00 is exactly 55 characters.
    if (tp.size() != kTraceparentSize) return std::nullopt;
  } else if (tp.size() > kTraceparentSize && tp[kTraceparentSize] != '-') {
    // A higher version may append fields, each after a '-'.
    return std::nullopt;
  }

  std::array<uint8_t, TraceId::kSize> trace_id_bytes;
  std::array<uint8_t, SpanId::kSize> span_id_bytes;
  uint8_t flags = 0;
  if (!hex::DecodeLower(tp.substr(kTraceIdOffset, 2 * TraceId::kSize), trace_id_bytes.data(),
                        TraceId::kSize) ||
      !hex::DecodeLower(tp.substr(kSpanIdOffset, 2 * SpanId::kSize), span_id_bytes.data(),
                        SpanId::kSize) ||
      !hex::DecodeLower(tp.substr(kFlagsOffset, 2), &flags, 1)) {
    return std::nullopt;
  }
  TraceId trace_id(trace_id_bytes);
  SpanId span_id(span_id_bytes);
  if (!trace_id.IsValid() || !span_id.IsValid()) return std::nullopt;
  // Of a higher version only the flags this version defines are read.
  if (version != 0) flags &= kKnownFlags;

  TraceState state;
  if (!tracestate.empty()) state = TraceState::ParseStrict(tracestate).value_or(TraceState());
  return SpanContext(trace_id, span_id, flags, /*remote=*/true, std::move(state));
}

void FormatTraceparent(const SpanContext& context, char out[55]) {
  out[0] = '0';
  out[1] = '0';
  out[2] = '-';
  context.trace_id().WriteHex(out + kTraceIdOffset);
  out[kSpanIdOffset - 1] = '-';
  context.span_id().WriteHex(out + kSpanIdOffset);
  out[kFlagsOffset - 1] = '-';
  // A version-00 writer sets the reserved flag bits to zero.
  const uint8_t flags = context.flags() & kKnownFlags;
  hex::Encode(&flags, 1, out + kFlagsOffset);
}

std::string FormatTraceparent(const SpanContext& context) {
  std::string out(kTraceparentSize, '\0');
  FormatTraceparent(context, out.data());
  return out;
}

Baggage ParseBaggage(std::string_view header) {
  std::vector<Baggage::Entry> entries;
  std::unordered_map<std::string_view, size_t> index;  // key -> position in entries
  size_t pos = 0;
  while (pos <= header.size()) {
    size_t comma = header.find(',', pos);
    if (comma == std::string_view::npos) comma = header.size();
    std::string_view member = TrimOws(header.substr(pos, comma - pos));
    pos = comma + 1;
    if (member.empty()) continue;

    size_t semi = member.find(';');
    std::string_view kv = member.substr(0, semi);
    std::string_view props;
    if (semi != std::string_view::npos) {
      props = TrimOws(member.substr(semi + 1));
      if (!IsValidProperties(props)) continue;
    }
    size_t eq = kv.find('=');
    if (eq == std::string_view::npos) continue;
    std::string_view key = TrimOws(kv.substr(0, eq));
    if (!IsToken(key)) continue;
    std::string value;
    if (!DecodeBaggageValue(TrimOws(kv.substr(eq + 1)), value)) continue;

    // Of repeated keys the last value wins (as Baggage::Set does), in the
    // first one's place.
    auto it = index.find(key);
    if (it != index.end()) {
      entries[it->second].value = std::move(value);
      entries[it->second].metadata = std::string(props);
      continue;
    }
    index.emplace(key, entries.size());
    entries.push_back({std::string(key), std::move(value), std::string(props)});
  }

  // The limits, measured on what FormatBaggage writes, so that whatever is
  // parsed can be sent on whole.
  std::vector<Baggage::Entry> kept;
  size_t bytes = 0;
  for (Baggage::Entry& e : entries) {
    if (kept.size() == kBaggageMaxMembers) break;
    size_t size = EncodeMember(e).size() + (kept.empty() ? 0 : 1);
    if (bytes + size > kBaggageMaxBytes) continue;
    bytes += size;
    kept.push_back(std::move(e));
  }

  Baggage baggage;
  for (Baggage::Entry& e : kept) baggage = baggage.Set(e.key, e.value, e.metadata);
  return baggage;
}

std::string FormatBaggage(const Baggage& baggage) {
  std::string out;
  size_t members = 0;
  for (const Baggage::Entry& e : baggage.entries()) {
    if (members == kBaggageMaxMembers) break;
    std::string member = EncodeMember(e);
    if (member.empty()) continue;
    size_t size = member.size() + (out.empty() ? 0 : 1);
    if (out.size() + size > kBaggageMaxBytes) continue;
    if (!out.empty()) out.push_back(',');
    out.append(member);
    ++members;
  }
  return out;
}

}  // namespace w3c

}  // namespace prism::tracing
