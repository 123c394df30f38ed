// W3C Baggage: parsing, formatting (with the spec's limits) and the propagator.

#include <array>
#include <unordered_map>
#include <utility>

#include "prism/tracing/propagation.h"
#include "text.h"

namespace prism::tracing {
namespace {
using internal::IsOws;
using internal::TrimOws;

constexpr std::string_view kBaggage = "baggage";

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

}  // namespace

std::unique_ptr<TextMapPropagator> MakeW3CBaggagePropagator() {
  return std::make_unique<W3CBaggagePropagator>();
}

namespace w3c {
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
