#include "wire.h"

#include <grpcpp/support/byte_buffer.h>

#include <cstdint>
#include <vector>

namespace prism::proxy {
namespace {

// Reads a varint at `p`; false when truncated or longer than 10 bytes.
bool ReadVarint(const uint8_t*& p, const uint8_t* end, uint64_t& out) {
  uint64_t value = 0;
  for (int shift = 0; shift < 70; shift += 7) {
    if (p == end) return false;
    uint8_t b = *p++;
    if (shift == 63 && (b & 0x7e)) return false;  // overflows 64 bits
    value |= uint64_t{b & 0x7fu} << shift;
    if (!(b & 0x80)) {
      out = value;
      return true;
    }
  }
  return false;
}

absl::Status Malformed(std::string_view what) {
  return absl::InvalidArgumentError("malformed request: " + std::string(what));
}

}  // namespace

bool IsValidUtf8(std::string_view s) {
  const auto* p = reinterpret_cast<const uint8_t*>(s.data());
  const auto* end = p + s.size();
  while (p < end) {
    uint8_t c = *p;
    if (c < 0x80) {
      ++p;
      continue;
    }
    int n;
    uint32_t cp;
    if ((c & 0xe0) == 0xc0) {
      n = 1;
      cp = c & 0x1f;
    } else if ((c & 0xf0) == 0xe0) {
      n = 2;
      cp = c & 0x0f;
    } else if ((c & 0xf8) == 0xf0) {
      n = 3;
      cp = c & 0x07;
    } else {
      return false;
    }
    if (end - p <= n) return false;
    for (int i = 1; i <= n; ++i) {
      if ((p[i] & 0xc0) != 0x80) return false;
      cp = (cp << 6) | (p[i] & 0x3f);
    }
    // Overlong forms, surrogates and values past U+10FFFF are invalid.
    if ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) ||
        cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) {
      return false;
    }
    p += n + 1;
  }
  return true;
}

absl::StatusOr<std::string_view> ReadNamespace(std::string_view bytes) {
  const auto* p = reinterpret_cast<const uint8_t*>(bytes.data());
  const auto* end = p + bytes.size();
  std::string_view ns;
  while (p < end) {
    uint64_t tag;
    if (!ReadVarint(p, end, tag)) return Malformed("truncated field tag");
    uint64_t field = tag >> 3;
    uint32_t wire_type = tag & 7;
    if (field == 0 || field > 536870911) return Malformed("invalid field number");
    if (field == 1 && wire_type != 2) {
      return Malformed("field 1 (namespace) must be a string");
    }
    switch (wire_type) {
      case 0: {
        uint64_t ignored;
        if (!ReadVarint(p, end, ignored)) return Malformed("truncated varint");
        break;
      }
      case 1:
        if (end - p < 8) return Malformed("truncated fixed64");
        p += 8;
        break;
      case 5:
        if (end - p < 4) return Malformed("truncated fixed32");
        p += 4;
        break;
      case 2: {
        uint64_t len;
        if (!ReadVarint(p, end, len)) return Malformed("truncated length");
        if (len > static_cast<uint64_t>(end - p)) return Malformed("length past the end");
        if (field == 1) ns = std::string_view(reinterpret_cast<const char*>(p), len);
        p += len;
        break;
      }
      default:
        return Malformed("unsupported wire type " + std::to_string(wire_type));
    }
  }
  if (!IsValidUtf8(ns)) return absl::InvalidArgumentError("namespace is not valid UTF-8");
  return ns;
}

absl::StatusOr<std::string> ReadNamespace(const grpc::ByteBuffer& buffer) {
  std::vector<grpc::Slice> slices;
  if (!buffer.Dump(&slices).ok()) return absl::InvalidArgumentError("unreadable request");
  absl::StatusOr<std::string_view> ns;
  std::string joined;
  if (slices.size() == 1) {
    ns = ReadNamespace(
        std::string_view(reinterpret_cast<const char*>(slices[0].begin()), slices[0].size()));
  } else {
    for (const auto& s : slices) joined.append(reinterpret_cast<const char*>(s.begin()), s.size());
    ns = ReadNamespace(joined);
  }
  if (!ns.ok()) return ns.status();
  return std::string(*ns);
}

}  // namespace prism::proxy
