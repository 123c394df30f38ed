#pragma once
// Attribute values of every OpenTelemetry type, and key/value lists.

#include <cstdint>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace prism::tracing {

// Index order matters: exporters switch on it.
using AttributeValue =
    std::variant<bool, int64_t, double, std::string, std::vector<bool>, std::vector<int64_t>,
                 std::vector<double>, std::vector<std::string>>;

struct KeyValue {
  std::string key;
  AttributeValue value;
};

using Attributes = std::vector<KeyValue>;

// Convenience constructors so that `{"k", 3}` and `{"k", "text"}` pick the
// OTel type a reader expects (int -> int64, const char* -> string, not bool).
inline AttributeValue Value(bool v) { return v; }
inline AttributeValue Value(int v) { return int64_t{v}; }
inline AttributeValue Value(unsigned v) { return int64_t{v}; }
inline AttributeValue Value(long v) { return int64_t{v}; }
inline AttributeValue Value(long long v) { return int64_t{v}; }
inline AttributeValue Value(unsigned long v) { return static_cast<int64_t>(v); }
inline AttributeValue Value(double v) { return v; }
inline AttributeValue Value(const char* v) { return std::string(v); }
inline AttributeValue Value(std::string_view v) { return std::string(v); }
inline AttributeValue Value(std::string v) { return v; }
inline AttributeValue Value(std::vector<bool> v) { return v; }
inline AttributeValue Value(std::vector<int64_t> v) { return v; }
inline AttributeValue Value(std::vector<double> v) { return v; }
inline AttributeValue Value(std::vector<std::string> v) { return v; }

// Appends an entry built in place (no temporary KeyValue to move), without
// looking for an existing key: for lists whose keys the caller knows are new.
inline void AppendString(Attributes& a, std::string_view key, std::string_view value) {
  KeyValue& kv = a.emplace_back();
  kv.key.assign(key);
  kv.value.emplace<std::string>(value);
}
inline void AppendInt(Attributes& a, std::string_view key, int64_t value) {
  KeyValue& kv = a.emplace_back();
  kv.key.assign(key);
  kv.value = value;
}

}  // namespace prism::tracing
