// Fuzzes TraceState::Parse and TraceState::ParseStrict: whatever parses must
// format to a header that parses back to the same list, strictly too; and
// the list operations keep the W3C invariants (valid members, unique keys,
// at most 32, an updated key first).

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "prism/tracing/trace_state.h"

using prism::tracing::TraceState;

namespace {

void CheckInvariants(const TraceState& ts) {
  if (ts.size() > TraceState::kMaxMembers) abort();
  const auto& m = ts.members();
  for (size_t i = 0; i < m.size(); ++i) {
    if (!TraceState::IsValidKey(m[i].key) || !TraceState::IsValidValue(m[i].value)) abort();
    for (size_t j = 0; j < i; ++j) {
      if (m[i].key == m[j].key) abort();
    }
  }
}

void CheckRoundTrip(const TraceState& ts) {
  std::string header = ts.ToHeader();
  if (!(TraceState::Parse(header) == ts)) abort();
  std::optional<TraceState> strict = TraceState::ParseStrict(header);
  if (!strict || !(*strict == ts)) abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);

  TraceState lenient = TraceState::Parse(input);
  CheckInvariants(lenient);
  CheckRoundTrip(lenient);

  std::optional<TraceState> strict = TraceState::ParseStrict(input);
  if (strict) {
    CheckInvariants(*strict);
    CheckRoundTrip(*strict);
    // When nothing is invalid the two parsers agree.
    if (!(*strict == lenient)) abort();
  }

  // Set moves a key to the front and never exceeds 32 members.
  if (!lenient.empty()) {
    const std::string key = lenient.members().back().key;
    TraceState updated = lenient.Set(key, "fuzz");
    CheckInvariants(updated);
    if (updated.members().front().key != key || updated.size() != lenient.size()) abort();
    TraceState erased = updated.Erase(key);
    if (erased.size() + 1 != updated.size() || erased.Get(key)) abort();
  }
  TraceState added = lenient.Set("prism", "fuzz");
  CheckInvariants(added);
  if (added.members().front().key != "prism") abort();
  return 0;
}
