#pragma once
// A tiny protobuf wire-format reader: finds field 1 (the namespace) of a
// request without decoding the rest, so the proxy can forward raw bytes.

#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace grpc {
class ByteBuffer;
}

namespace prism::proxy {

// Returns the value of field 1 (a length-delimited string) of the serialized
// message `bytes`. Every field is walked, so a later field 1 wins (protobuf's
// "last one wins" for singular fields). Errors (INVALID_ARGUMENT): truncated
// or malformed wire data, field 1 with a non-string wire type, a namespace
// that is not valid UTF-8. A message without field 1 yields "".
absl::StatusOr<std::string_view> ReadNamespace(std::string_view bytes);

// Same, over a grpc::ByteBuffer (slices are joined only when there are
// several); the namespace is copied out.
absl::StatusOr<std::string> ReadNamespace(const grpc::ByteBuffer& buffer);

bool IsValidUtf8(std::string_view s);

}  // namespace prism::proxy
