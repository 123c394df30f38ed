#pragma once
// A tiny protobuf wire-format reader: checks a request and finds field 1
// (the namespace) without decoding it into messages, so the proxy can
// forward the raw bytes. Depends on nothing but absl (fuzzed in proxy/fuzz).

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace grpc {
class ByteBuffer;
}

namespace prism::proxy {

// The shape of field 2 onwards, per prism.v1 request type (kv.proto).
enum class RequestShape {
  kAny,        // only the structure is checked (no known fields but namespace)
  kKey,        // Get, Delete, Exists: 2 = key (string)
  kSet,        // Set: 2 = key (string), 3 = value (bytes)
  kKeys,       // BatchGet, BatchDelete: 2 = repeated keys (string)
  kItems,      // BatchSet: 2 = repeated KeyValuePair {1 = key (string), 2 = value (bytes)}
  kPublish,    // PubSub Publish: 2 = subject (string), 3 = data (bytes)
  kSubscribe,  // PubSub Subscribe: 2 = subject (string), 3 = queue_group (string)
};

// Walks the serialized request `bytes` and returns its namespace (field 1;
// a later field 1 wins, as in protobuf; "" when absent). INVALID_ARGUMENT
// with a message for everything protobuf would refuse to parse - truncated
// or malformed wire data (also inside a KeyValuePair), a string field that
// is not valid UTF-8 - plus field 1 with a non-string wire type, groups, and
// a namespace over prism::plugin::kMaxNamespaceBytes (checked before it is
// copied or recorded anywhere). Lengths of keys and values are left to the
// plugins, which check them against the same limits.
absl::StatusOr<std::string_view> ReadRequest(std::string_view bytes, RequestShape shape);
inline absl::StatusOr<std::string_view> ReadNamespace(std::string_view bytes) {
  return ReadRequest(bytes, RequestShape::kAny);
}

// Same, over a grpc::ByteBuffer (slices are joined only when there are
// several); the namespace is copied out.
absl::StatusOr<std::string> ReadRequest(const grpc::ByteBuffer& buffer, RequestShape shape);

// The value of varint field `number` of a serialized message (the last one
// wins, as in protobuf; 0 when absent), e.g. a health check's status.
// INVALID_ARGUMENT for malformed wire data or the field with another wire type.
absl::StatusOr<uint64_t> ReadVarintField(std::string_view bytes, uint64_t number);

bool IsValidUtf8(std::string_view s);

// The last occurrence of length-delimited field `number` in the serialized
// message `bytes` (protobuf's rule for a singular field), or nullopt when it
// is absent or the bytes are malformed. For prism.v1.Message, whose fields
// the proxy reads without decoding the message.
std::optional<std::string_view> LastStringField(std::string_view bytes, uint64_t number);
// Appends field `number` = `value` (wire type 2) to `out`: appended to a
// message, it replaces an earlier occurrence for every reader.
void AppendStringField(std::string& out, uint64_t number, std::string_view value);

}  // namespace prism::proxy
