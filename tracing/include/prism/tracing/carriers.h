#pragma once
// TextMapCarrier adapters for plain maps and HTTP-style header multimaps.

#include <map>
#include <string>
#include <unordered_map>

#include "prism/tracing/propagation.h"

namespace prism::tracing {

namespace internal {
bool EqualsIgnoreCase(std::string_view a, std::string_view b);
}

// Any map<string, string>-like container with exact (lower-case) keys.
template <typename Map>
class MapCarrier : public TextMapCarrier {
 public:
  explicit MapCarrier(Map& map) : map_(map) {}
  std::optional<std::string> Get(std::string_view key) const override {
    auto it = map_.find(std::string(key));
    if (it == map_.end()) return std::nullopt;
    return it->second;
  }
  void Set(std::string_view key, std::string_view value) override {
    map_[std::string(key)] = std::string(value);
  }

 private:
  Map& map_;
};
MapCarrier(std::map<std::string, std::string>&)->MapCarrier<std::map<std::string, std::string>>;
MapCarrier(std::unordered_map<std::string, std::string>&)
    ->MapCarrier<std::unordered_map<std::string, std::string>>;

// A multimap of header name -> value (for example httplib::Headers, or
// std::multimap): case-insensitive names, repeated fields combined with ','.
// Set replaces every existing field of that name.
template <typename Multimap>
class HeaderCarrier : public TextMapCarrier {
 public:
  explicit HeaderCarrier(Multimap& headers) : headers_(headers) {}
  std::optional<std::string> Get(std::string_view key) const override {
    std::optional<std::string> out;
    for (const auto& [name, value] : headers_) {
      if (!internal::EqualsIgnoreCase(name, key)) continue;
      if (out) {
        out->push_back(',');
        out->append(value);
      } else {
        out = value;
      }
    }
    return out;
  }
  void Set(std::string_view key, std::string_view value) override {
    for (auto it = headers_.begin(); it != headers_.end();) {
      if (internal::EqualsIgnoreCase(it->first, key)) {
        it = headers_.erase(it);
      } else {
        ++it;
      }
    }
    headers_.emplace(std::string(key), std::string(value));
  }

 private:
  Multimap& headers_;
};

}  // namespace prism::tracing
