// Baggage: an immutable list of entries with unique keys. Every mutation
// builds a new list; copies share it.

#include "prism/tracing/baggage.h"

#include <algorithm>

namespace prism::tracing {

namespace {

const std::vector<Baggage::Entry>& EmptyEntries() {
  static const std::vector<Baggage::Entry> kEmpty;
  return kEmpty;
}

}  // namespace

const std::vector<Baggage::Entry>& Baggage::entries() const {
  return entries_ ? *entries_ : EmptyEntries();
}

std::optional<std::string_view> Baggage::Get(std::string_view key) const {
  if (!entries_) return std::nullopt;
  for (const Entry& e : *entries_) {
    if (e.key == key) return std::string_view(e.value);
  }
  return std::nullopt;
}

Baggage Baggage::Set(std::string_view key, std::string_view value,
                     std::string_view metadata) const {
  if (key.empty()) return *this;
  std::vector<Entry> entries = this->entries();
  auto it =
      std::find_if(entries.begin(), entries.end(), [key](const Entry& e) { return e.key == key; });
  if (it != entries.end()) {
    it->value = std::string(value);
    it->metadata = std::string(metadata);
  } else {
    entries.push_back({std::string(key), std::string(value), std::string(metadata)});
  }
  return Baggage(std::make_shared<const std::vector<Entry>>(std::move(entries)));
}

Baggage Baggage::Remove(std::string_view key) const {
  if (!Get(key)) return *this;
  std::vector<Entry> entries;
  entries.reserve(size());
  for (const Entry& e : *entries_) {
    if (e.key != key) entries.push_back(e);
  }
  if (entries.empty()) return Baggage();
  return Baggage(std::make_shared<const std::vector<Entry>>(std::move(entries)));
}

// Keys are unique, so two baggages are equal when they hold the same entries,
// in whatever order.
bool operator==(const Baggage& a, const Baggage& b) {
  if (a.entries_ == b.entries_) return true;
  const auto& ea = a.entries();
  const auto& eb = b.entries();
  if (ea.size() != eb.size()) return false;
  for (const Baggage::Entry& x : ea) {
    auto it = std::find_if(eb.begin(), eb.end(),
                           [&x](const Baggage::Entry& y) { return y.key == x.key; });
    if (it == eb.end() || it->value != x.value || it->metadata != x.metadata) return false;
  }
  return true;
}

}  // namespace prism::tracing
