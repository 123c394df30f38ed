// Fuzzes w3c::ParseBaggage: whatever parses stays within the limits and
// formats to a header that parses back to the same baggage.

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "prism/tracing/propagation.h"

using prism::tracing::Baggage;
namespace w3c = prism::tracing::w3c;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);

  Baggage baggage = w3c::ParseBaggage(input);
  if (baggage.size() > w3c::kBaggageMaxMembers) abort();
  for (size_t i = 0; i < baggage.entries().size(); ++i) {
    const auto& e = baggage.entries()[i];
    if (e.key.empty()) abort();
    for (size_t j = 0; j < i; ++j) {
      if (baggage.entries()[j].key == e.key) abort();
    }
  }

  std::string header = w3c::FormatBaggage(baggage);
  if (header.size() > w3c::kBaggageMaxBytes) abort();
  Baggage back = w3c::ParseBaggage(header);
  if (!(back == baggage)) abort();
  if (w3c::FormatBaggage(back) != header) abort();
  return 0;
}
