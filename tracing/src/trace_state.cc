// W3C tracestate (Trace Context Level 2, "tracestate Header Field Values"):
//
//   list        = list-member 0*31( OWS "," OWS list-member )
//   list-member = (key "=" value) / OWS
//   key         = simple-key / multi-tenant-key
//   simple-key  = lcalpha 0*255( lcalpha / DIGIT / "_" / "-"/ "*" / "/" )
//   multi-tenant-key = tenant-id "@" system-id
//   tenant-id   = ( lcalpha / DIGIT ) 0*240( lcalpha / DIGIT / "_" / "-"/ "*" / "/" )
//   system-id   = lcalpha 0*13( lcalpha / DIGIT / "_" / "-"/ "*" / "/" )
//   value       = 0*255(chr) nblk-chr
//   nblk-chr    = %x21-2B / %x2D-3C / %x3E-7E
//   chr         = %x20 / nblk-chr

#include "prism/tracing/trace_state.h"

#include <algorithm>

#include "text.h"

namespace prism::tracing {

namespace {
using internal::IsOws;
using internal::TrimOws;

constexpr size_t kMaxKeySize = 256;
constexpr size_t kMaxTenantSize = 241;
constexpr size_t kMaxSystemSize = 14;
constexpr size_t kMaxValueSize = 256;

constexpr bool IsLcAlpha(char c) { return c >= 'a' && c <= 'z'; }
constexpr bool IsDigit(char c) { return c >= '0' && c <= '9'; }
constexpr bool IsKeyChar(char c) {
  return IsLcAlpha(c) || IsDigit(c) || c == '_' || c == '-' || c == '*' || c == '/';
}

// One key part: a first character (lcalpha, or also DIGIT for a tenant id)
// followed by key characters, at most `max` in all.
bool IsValidKeyPart(std::string_view s, size_t max, bool digit_first) {
  if (s.empty() || s.size() > max) return false;
  if (!IsLcAlpha(s[0]) && !(digit_first && IsDigit(s[0]))) return false;
  for (size_t i = 1; i < s.size(); ++i) {
    if (!IsKeyChar(s[i])) return false;
  }
  return true;
}

const std::vector<TraceState::Member>& EmptyMembers() {
  static const std::vector<TraceState::Member> kEmpty;
  return kEmpty;
}

// Splits `header` into members. Strict: returns false on the first invalid
// member, repeated key or 33rd member. Lenient: drops those and goes on.
bool ParseMembers(std::string_view header, bool strict, std::vector<TraceState::Member>& out) {
  size_t pos = 0;
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
    if (valid) {
      valid = std::none_of(out.begin(), out.end(),
                           [key](const TraceState::Member& m) { return m.key == key; });
    }
    if (!valid) {
      if (strict) return false;
      continue;
    }
    if (out.size() == TraceState::kMaxMembers) {
      if (strict) return false;
      break;
    }
    out.push_back({std::string(key), std::string(value)});
  }
  return true;
}

}  // namespace

bool TraceState::IsValidKey(std::string_view key) {
  size_t at = key.find('@');
  if (at == std::string_view::npos) return IsValidKeyPart(key, kMaxKeySize, false);
  return IsValidKeyPart(key.substr(0, at), kMaxTenantSize, true) &&
         IsValidKeyPart(key.substr(at + 1), kMaxSystemSize, false);
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
