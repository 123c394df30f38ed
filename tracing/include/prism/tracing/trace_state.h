#pragma once
// W3C tracestate: an immutable, ordered list of vendor key/value members.

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace prism::tracing {

class TraceState {
 public:
  static constexpr size_t kMaxMembers = 32;
  struct Member {
    std::string key;
    std::string value;
  };

  TraceState() = default;

  // Parses a (possibly combined, comma-joined) tracestate header.
  // Invalid members are dropped; so are duplicate keys after the first
  // occurrence and members beyond 32. An empty or wholly invalid header
  // yields an empty TraceState.
  static TraceState Parse(std::string_view header);
  // The all-or-nothing form the W3C propagator uses (what the W3C Trace
  // Context test suite requires at its strict level): nullopt when any
  // non-empty member is invalid or there are more than 32 members. A
  // repeated key does not invalidate the header (the editor's draft): its
  // first occurrence is kept and the later ones are dropped. Empty and
  // whitespace-only members are allowed and skipped.
  static std::optional<TraceState> ParseStrict(std::string_view header);

  // The editor's-draft key grammar: a lcalpha or DIGIT, then up to 255 of
  // lcalpha / DIGIT / "_" / "-" / "*" / "/" / "@".
  static bool IsValidKey(std::string_view key);
  static bool IsValidValue(std::string_view value);

  bool empty() const { return members_ == nullptr || members_->empty(); }
  size_t size() const { return members_ ? members_->size() : 0; }
  const std::vector<Member>& members() const;
  std::optional<std::string_view> Get(std::string_view key) const;

  // Returns a copy where `key` is set to `value` and moved to the front, as
  // the W3C spec requires of an updated key. Invalid key/value: unchanged copy.
  // When full, the right-most member is dropped to make room.
  TraceState Set(std::string_view key, std::string_view value) const;
  TraceState Erase(std::string_view key) const;

  // The header value ("k1=v1,k2=v2"); empty when there are no members.
  std::string ToHeader() const;

  friend bool operator==(const TraceState& a, const TraceState& b);

 private:
  explicit TraceState(std::shared_ptr<const std::vector<Member>> m) : members_(std::move(m)) {}
  // Shared and immutable, so copying a SpanContext is one reference count.
  std::shared_ptr<const std::vector<Member>> members_;
};

}  // namespace prism::tracing
