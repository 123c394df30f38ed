#pragma once
// W3C baggage: immutable application-defined key/value pairs that travel
// with a request.

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace prism::tracing {

class Baggage {
 public:
  struct Entry {
    std::string key;
    std::string value;     // decoded
    std::string metadata;  // properties after the first ';', kept verbatim
  };
  Baggage() = default;

  bool empty() const { return entries_ == nullptr || entries_->empty(); }
  size_t size() const { return entries_ ? entries_->size() : 0; }
  const std::vector<Entry>& entries() const;
  std::optional<std::string_view> Get(std::string_view key) const;
  // A later Set of the same key replaces the earlier value.
  Baggage Set(std::string_view key, std::string_view value, std::string_view metadata = {}) const;
  Baggage Remove(std::string_view key) const;

  friend bool operator==(const Baggage& a, const Baggage& b);

 private:
  explicit Baggage(std::shared_ptr<const std::vector<Entry>> e) : entries_(std::move(e)) {}
  std::shared_ptr<const std::vector<Entry>> entries_;
};

}  // namespace prism::tracing
