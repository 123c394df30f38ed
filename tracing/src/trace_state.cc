// W3C tracestate, as the Trace Context editor's draft (w3c/trace-context
// main, spec/20-http_request_header_format.md, "tracestate Header Field
// Values") has it; docs/tracing.md says which text we follow and why:
//
//   list        = list-member 0*31( OWS "," OWS list-member )
//   list-member = (key "=" value) / OWS
//   key         = ( lcalpha / DIGIT ) 0*255 ( keychar )
//   keychar     = lcalpha / DIGIT / "_" / "-" / "*" / "/" / "@"
//   value       = 0*255(chr) nblk-chr
//   nblk-chr    = %x21-2B / %x2D-3C / %x3E-7E
//   chr         = %x20 / nblk-chr
//
// The draft dropped Level 1's tenant@system key form (241 + 14 characters):
// '@' is now an ordinary key character after the first. It also no longer
// treats a repeated key as an invalid header ("only one entry per key is
// allowed", but vendors MAY discard duplicates they did not generate; the
// conformance suite accepts either keeping or dropping them). We keep the
// first occurrence and drop the later ones, so a list never holds a key
// twice and Get/Set stay unambiguous.

#include "prism/tracing/trace_state.h"

#include <algorithm>

#include "text.h"

namespace prism::tracing {

namespace {
using internal::IsOws;
using internal::TrimOws;

constexpr size_t kMaxKeySize = 256;
constexpr size_t kMaxValueSize = 256;

constexpr bool IsLcAlpha(char c) { return c >= 'a' && c <= 'z'; }
constexpr bool IsDigit(char c) { return c >= '0' && c <= '9'; }
constexpr bool IsKeyChar(char c) {
  return IsLcAlpha(c) || IsDigit(c) || c == '_' || c == '-' || c == '*' || c == '/' || c == '@';
}

const std::vector<TraceState::Member>& EmptyMembers() {
  static const std::vector<TraceState::Member> kEmpty;
  return kEmpty;
}

// Splits `header` into members. A repeated key keeps its first occurrence
// in both modes. Strict: returns false on the first invalid member or when
// there are more than 32 key=value members (repeats count: they are list
// members on the wire). Lenient: drops invalid members and stops at 32.
bool ParseMembers(std::string_view header, bool strict, std::vector<TraceState::Member>& out) {
  size_t pos = 0;
  size_t seen = 0;  // non-empty members, duplicates included
  while (pos <= header.size()) {
    size_t comma = header.find(',', pos);
    if (comma == std::string_view::npos) comma = header.size();
    std::string_view member = TrimOws(header.substr(pos, comma - pos));
    pos = comma + 1;
    if (member.empty()) continue;  // empty and whitespace-only members are allowed

    size_t eq = member.find('=');
    bool valid = eq != std::string_view::npos;
    std::string_view key;
    std::string_view value;
    if (valid) {
      key = member.substr(0, eq);
      value = member.substr(eq + 1);
      valid = TraceState::IsValidKey(key) && TraceState::IsValidValue(value);
    }
    if (!valid) {
      if (strict) return false;
      continue;
    }
    if (++seen > TraceState::kMaxMembers && strict) return false;
    if (std::any_of(out.begin(), out.end(),
                    [key](const TraceState::Member& m) { return m.key == key; })) {
      continue;  // a later duplicate: dropped, the header is kept
    }
    if (out.size() == TraceState::kMaxMembers) break;  // lenient only: strict failed above
    out.push_back({std::string(key), std::string(value)});
  }
  return true;
}

}  // namespace

bool TraceState::IsValidKey(std::string_view key) {
  if (key.empty() || key.size() > kMaxKeySize) return false;
  if (!IsLcAlpha(key[0]) && !IsDigit(key[0])) return false;
  return std::all_of(key.begin() + 1, key.end(), IsKeyChar);
}

bool TraceState::IsValidValue(std::string_view value) {
  if (value.empty() || value.size() > kMaxValueSize) return false;
  for (char c : value) {
    if (c < 0x20 || c > 0x7e || c == ',' || c == '=') return false;
  }
  return value.back() != ' ';
}

TraceState TraceState::Parse(std::string_view header) {
  std::vector<Member> members;
  ParseMembers(header, /*strict=*/false, members);
  if (members.empty()) return TraceState();
  return TraceState(std::make_shared<const std::vector<Member>>(std::move(members)));
}

std::optional<TraceState> TraceState::ParseStrict(std::string_view header) {
  std::vector<Member> members;
  if (!ParseMembers(header, /*strict=*/true, members)) return std::nullopt;
  if (members.empty()) return TraceState();
  return TraceState(std::make_shared<const std::vector<Member>>(std::move(members)));
}

const std::vector<TraceState::Member>& TraceState::members() const {
  return members_ ? *members_ : EmptyMembers();
}

std::optional<std::string_view> TraceState::Get(std::string_view key) const {
  if (!members_) return std::nullopt;
  for (const Member& m : *members_) {
    if (m.key == key) return std::string_view(m.value);
  }
  return std::nullopt;
}

TraceState TraceState::Set(std::string_view key, std::string_view value) const {
  if (!IsValidKey(key) || !IsValidValue(value)) return *this;
  std::vector<Member> members;
  members.reserve(size() + 1);
  members.push_back({std::string(key), std::string(value)});
  for (const Member& m : this->members()) {
    if (m.key != key) members.push_back(m);
  }
  // Full: the right-most member makes room for the new left-most one.
  if (members.size() > kMaxMembers) members.resize(kMaxMembers);
  return TraceState(std::make_shared<const std::vector<Member>>(std::move(members)));
}

TraceState TraceState::Erase(std::string_view key) const {
  if (!Get(key)) return *this;
  std::vector<Member> members;
  members.reserve(size());
  for (const Member& m : *members_) {
    if (m.key != key) members.push_back(m);
  }
  if (members.empty()) return TraceState();
  return TraceState(std::make_shared<const std::vector<Member>>(std::move(members)));
}

std::string TraceState::ToHeader() const {
  std::string out;
  if (!members_) return out;
  size_t n = 0;
  for (const Member& m : *members_) n += m.key.size() + m.value.size() + 2;
  out.reserve(n);
  for (const Member& m : *members_) {
    if (!out.empty()) out.push_back(',');
    out.append(m.key);
    out.push_back('=');
    out.append(m.value);
  }
  return out;
}

bool operator==(const TraceState& a, const TraceState& b) {
  if (a.members_ == b.members_) return true;
  const auto& ma = a.members();
  const auto& mb = b.members();
  if (ma.size() != mb.size()) return false;
  for (size_t i = 0; i < ma.size(); ++i) {
    if (ma[i].key != mb[i].key || ma[i].value != mb[i].value) return false;
  }
  return true;
}

}  // namespace prism::tracing
