#pragma once
// Attribute values of every OpenTelemetry type, and key/value lists.

#include <atomic>
#include <concepts>
#include <cstdint>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace prism::tracing {

// An attribute's name. Made from a string literal (or a constexpr
// AttributeKey) it only points at the literal, which lives as long as the
// program: the fixed names of the semantic conventions then cost a span no
// copy and no allocation. Made from any other string it owns a copy.
// A literal is recognised at compile time (consteval), and so is whether
// the name needs escaping in JSON.
class AttributeKey {
 public:
  constexpr AttributeKey() = default;
  template <size_t N>
  consteval AttributeKey(const char (&literal)[N])  // NOLINT: implicit by design
      : data_(literal), size_(N - 1), plain_(IsPlain(std::string_view(literal, N - 1))) {}
  // A non-const array is not a literal: copy it.
  template <size_t N>
  AttributeKey(char (&chars)[N]) {  // NOLINT
    Own(std::string_view(chars));
  }
  template <typename T>
  requires std::same_as<T, const char*> || std::same_as<T, char*> AttributeKey(T chars) {  // NOLINT
    Own(std::string_view(chars));
  }
  AttributeKey(std::string_view s) { Own(s); }    // NOLINT
  AttributeKey(const std::string& s) { Own(s); }  // NOLINT
  AttributeKey(const AttributeKey& other)
      : data_(other.data_), size_(other.size_), plain_(other.plain_) {
    if (other.owned_) Own(other.view());
  }
  AttributeKey(AttributeKey&& other) noexcept
      : data_(std::exchange(other.data_, "")),
        size_(std::exchange(other.size_, 0)),
        plain_(other.plain_),
        owned_(std::exchange(other.owned_, false)) {}
  AttributeKey& operator=(AttributeKey other) noexcept {
    std::swap(data_, other.data_);
    std::swap(size_, other.size_);
    std::swap(plain_, other.plain_);
    std::swap(owned_, other.owned_);
    return *this;
  }
  constexpr ~AttributeKey() {
    if (owned_) delete[] data_;
  }

  constexpr std::string_view view() const { return std::string_view(data_, size_); }
  constexpr operator std::string_view() const { return view(); }  // NOLINT
  const char* data() const { return data_; }
  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  char operator[](size_t i) const { return data_[i]; }
  // True when the name is printable ASCII without '"' or '\\': JSON
  // encoders may copy it as is.
  bool plain() const { return plain_; }

  friend bool operator==(const AttributeKey& a, const AttributeKey& b) {
    return a.view() == b.view();
  }
  friend bool operator==(const AttributeKey& a, std::string_view b) { return a.view() == b; }
  friend bool operator==(const AttributeKey& a, const std::string& b) { return a.view() == b; }
  template <size_t N>
  friend bool operator==(const AttributeKey& a, const char (&b)[N]) {
    return a.view() == std::string_view(b);
  }
  template <typename Stream>
  requires requires(Stream& os, std::string_view v) { os << v; }
  friend Stream& operator<<(Stream& os, const AttributeKey& k) {
    os << k.view();
    return os;
  }
  friend std::string operator+(std::string a, const AttributeKey& b) { return a.append(b.view()); }
  friend std::string operator+(const AttributeKey& a, std::string_view b) {
    return std::string(a.view()).append(b);
  }

 private:
  static constexpr bool IsPlain(std::string_view s) {
    for (char c : s) {
      if (c < 0x20 || c > 0x7e || c == '"' || c == '\\') return false;
    }
    return true;
  }
  void Own(std::string_view s) {
    char* copy = new char[s.size() + 1];
    std::memcpy(copy, s.data(), s.size());
    copy[s.size()] = '\0';
    data_ = copy;
    size_ = static_cast<uint32_t>(s.size());
    plain_ = IsPlain(s);
    owned_ = true;
  }

  const char* data_ = "";
  uint32_t size_ = 0;
  bool plain_ = true;
  bool owned_ = false;
};

// Index order matters: exporters switch on it.
using AttributeValue =
    std::variant<bool, int64_t, double, std::string, std::vector<bool>, std::vector<int64_t>,
                 std::vector<double>, std::vector<std::string>>;

struct KeyValue {
  KeyValue() = default;
  // Builds the value in place from what is given (no temporary
  // AttributeValue to move). A constructor rather than an aggregate because
  // clang before 16 cannot emplace_back an aggregate from parentheses.
  template <typename V>
  requires std::constructible_from<AttributeValue, V&&> KeyValue(AttributeKey k, V&& v)
      : key(std::move(k)), value(std::forward<V>(v)) {}

  AttributeKey key;
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
inline void AppendString(Attributes& a, AttributeKey key, std::string_view value) {
  a.emplace_back(std::move(key), std::string(value));
}
inline void AppendInt(Attributes& a, AttributeKey key, int64_t value) {
  a.emplace_back(std::move(key), value);
}

// A fixed list of attributes that many spans share - the ones every call of
// one method has, say - which a span refers to instead of copying
// (StartSpanOptions::shared_attributes). The span's attributes are then the
// block's followed by its own; exporters encode the block once and reuse
// the bytes (Encoded). Callgrind, BM_ProxyRequestShape: the proxy's four
// spans cost 11,749 instructions a request with every attribute copied in,
// 10,152 with blocks; the proxy's export went from 8.3k to 6.3k a call
// (docs/benchmarks.md, "Seventh pass").
//
// Thread safety: immutable once made; any number of threads may read one,
// and call Encoded, at once. Keys are canonical, as a span's are: empty
// keys are dropped, and of repeated keys the first place keeps the last
// value.
//
//   static const auto kBlock = AttributeBlock::Make({{"rpc.system", "grpc"}, ...});
//   StartSpanOptions o;
//   o.shared_attributes = kBlock;
class AttributeBlock {
 public:
  static std::shared_ptr<const AttributeBlock> Make(Attributes attributes);
  // A block of `base`'s attributes followed by `more`: the attributes a
  // span that started with `base` has at its end, say (gRPC's status). A
  // span that refers to `base` and is given the result
  // (Span::SetAttributes) refers to it instead, copying nothing. When a key
  // of `more` is one of `base`'s, the result is an ordinary block (Make of
  // both lists, later values winning) that extends nothing.
  static std::shared_ptr<const AttributeBlock> Extend(std::shared_ptr<const AttributeBlock> base,
                                                      Attributes more);
  // The block this one extends (Extend), or null; its attributes are the
  // first base()->size() of this one's.
  const AttributeBlock* base() const { return base_.get(); }

  const Attributes& attributes() const { return attributes_; }
  size_t size() const { return attributes_.size(); }
  bool empty() const { return attributes_.empty(); }
  // The SDK's KeyBit filter of the keys (tracing/src/shared.h).
  uint64_t key_bits() const { return key_bits_; }
  // The longest string value (or array element), in bytes: a span whose
  // value-length limit is shorter copies the block in to truncate it.
  size_t longest_value() const { return longest_value_; }
  const AttributeValue* Find(std::string_view key) const;

  // An exporter's encoding of the list, made by `encode` the first time
  // `format` is asked for and then kept for the block's life. An encoder
  // must always pass the same function for one format.
  enum class Format : uint8_t { kOtlpJson = 0, kOtlpProtobufSpan = 1 };
  using EncodeFn = void (*)(const Attributes&, std::string& out);
  const std::string& Encoded(Format format, EncodeFn encode) const {
    // Inline and one acquire load once made: std::call_once cost ~40
    // instructions a span on every export (callgrind, tenth pass in
    // docs/benchmarks.md).
    const auto i = static_cast<size_t>(format);
    if (encoded_ready_[i].load(std::memory_order_acquire)) [[likely]] {
      return encoded_[i];
    }
    return EncodeOnce(i, encode);
  }

  AttributeBlock(const AttributeBlock&) = delete;
  AttributeBlock& operator=(const AttributeBlock&) = delete;

 private:
  AttributeBlock() = default;
  std::shared_ptr<const AttributeBlock> base_;
  Attributes attributes_;
  uint64_t key_bits_ = 0;
  size_t longest_value_ = 0;
  const std::string& EncodeOnce(size_t format, EncodeFn encode) const;
  mutable std::once_flag once_[2];
  mutable std::atomic<bool> encoded_ready_[2] = {false, false};
  mutable std::string encoded_[2];
};

using SharedAttributes = std::shared_ptr<const AttributeBlock>;

}  // namespace prism::tracing
