#include "wire.h"

#include <grpcpp/support/byte_buffer.h>

#include <cstdint>
#include <vector>

#include "prism/plugin/limits.h"

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

namespace {

using Bytes = std::string_view;

// One field of a message: its number, wire type and, for length-delimited
// fields, the payload.
struct Field {
  uint64_t number;
  uint32_t wire_type;
  Bytes payload;        // wire type 2
  uint64_t varint = 0;  // wire type 0
};

// Calls on_field(const Field&) -> absl::Status for every field of `bytes`,
// stopping at the first error (wire errors are prefixed with `where`).
template <typename OnField>
absl::Status Walk(Bytes bytes, const std::string& where, OnField on_field) {
  const auto* p = reinterpret_cast<const uint8_t*>(bytes.data());
  const auto* end = p + bytes.size();
  auto bad = [&](std::string_view what) {
    return Malformed(where.empty() ? std::string(what) : where + ": " + std::string(what));
  };
  while (p < end) {
    uint64_t tag;
    if (!ReadVarint(p, end, tag)) return bad("truncated field tag");
    Field f{tag >> 3, static_cast<uint32_t>(tag & 7), {}, 0};
    if (f.number == 0 || f.number > 536870911) return bad("invalid field number");
    switch (f.wire_type) {
      case 0: {
        if (!ReadVarint(p, end, f.varint)) return bad("truncated varint");
        break;
      }
      case 1:
        if (end - p < 8) return bad("truncated fixed64");
        p += 8;
        break;
      case 5:
        if (end - p < 4) return bad("truncated fixed32");
        p += 4;
        break;
      case 2: {
        uint64_t len;
        if (!ReadVarint(p, end, len)) return bad("truncated length");
        if (len > static_cast<uint64_t>(end - p)) return bad("length past the end");
        f.payload = Bytes(reinterpret_cast<const char*>(p), len);
        p += len;
        break;
      }
      default:
        return bad("unsupported wire type " + std::to_string(f.wire_type));
    }
    if (auto st = on_field(f); !st.ok()) return st;
  }
  return absl::OkStatus();
}

absl::Status CheckString(Bytes s, const std::string& name) {
  if (IsValidUtf8(s)) return absl::OkStatus();
  return absl::InvalidArgumentError(name + " is not valid UTF-8");
}

}  // namespace

absl::StatusOr<std::string_view> ReadRequest(std::string_view bytes, RequestShape shape) {
  std::string_view ns;
  size_t repeated = 0;  // index of the next keys[i] / items[i]
  absl::Status st = Walk(bytes, "", [&](const Field& f) -> absl::Status {
    if (f.number == 1) {
      if (f.wire_type != 2) return Malformed("field 1 (namespace) must be a string");
      ns = f.payload;
      return absl::OkStatus();
    }
    // A known field with another wire type is an unknown field to protobuf:
    // skipped, as it would be.
    if (f.number == 3 && f.wire_type == 2 && shape == RequestShape::kSubscribe) {
      return CheckString(f.payload, "queue_group");
    }
    if (f.number != 2 || f.wire_type != 2) return absl::OkStatus();
    switch (shape) {
      case RequestShape::kAny:
        return absl::OkStatus();
      case RequestShape::kKey:
      case RequestShape::kSet:
        return CheckString(f.payload, "key");
      case RequestShape::kPublish:
      case RequestShape::kSubscribe:
        return CheckString(f.payload, "subject");
      case RequestShape::kKeys:
        return CheckString(f.payload, "keys[" + std::to_string(repeated++) + "]");
      case RequestShape::kItems: {
        std::string item = "items[" + std::to_string(repeated++) + "]";
        return Walk(f.payload, item, [&](const Field& g) {
          if (g.number == 1 && g.wire_type == 2) return CheckString(g.payload, item + ".key");
          return absl::OkStatus();
        });
      }
    }
    return absl::OkStatus();
  });
  if (!st.ok()) return st;
  // Length first: an oversized namespace is never scanned, copied or echoed.
  if (ns.size() > prism::plugin::kMaxNamespaceBytes) {
    return absl::InvalidArgumentError("namespace is " + std::to_string(ns.size()) +
                                      " bytes; the limit is " +
                                      std::to_string(prism::plugin::kMaxNamespaceBytes));
  }
  if (!IsValidUtf8(ns)) return absl::InvalidArgumentError("namespace is not valid UTF-8");
  return ns;
}

absl::StatusOr<uint64_t> ReadVarintField(std::string_view bytes, uint64_t number) {
  uint64_t value = 0;
  absl::Status st = Walk(bytes, "", [&](const Field& f) -> absl::Status {
    if (f.number != number) return absl::OkStatus();
    if (f.wire_type != 0) {
      return Malformed("field " + std::to_string(number) + " must be a varint");
    }
    value = f.varint;
    return absl::OkStatus();
  });
  if (!st.ok()) return st;
  return value;
}

std::optional<std::string_view> LastStringField(std::string_view bytes, uint64_t number) {
  std::optional<std::string_view> out;
  absl::Status st = Walk(bytes, "", [&](const Field& f) {
    if (f.number == number && f.wire_type == 2) out = f.payload;
    return absl::OkStatus();
  });
  if (!st.ok()) return std::nullopt;
  return out;
}

void AppendStringField(std::string& out, uint64_t number, std::string_view value) {
  auto varint = [&](uint64_t v) {
    while (v >= 0x80) {
      out.push_back(static_cast<char>((v & 0x7f) | 0x80));
      v >>= 7;
    }
    out.push_back(static_cast<char>(v));
  };
  varint(number << 3 | 2);
  varint(value.size());
  out.append(value);
}

absl::StatusOr<std::string> ReadRequest(const grpc::ByteBuffer& buffer, RequestShape shape) {
  std::vector<grpc::Slice> slices;
  if (!buffer.Dump(&slices).ok()) return absl::InvalidArgumentError("unreadable request");
  absl::StatusOr<std::string_view> ns;
  std::string joined;
  if (slices.size() == 1) {
    ns = ReadRequest(
        std::string_view(reinterpret_cast<const char*>(slices[0].begin()), slices[0].size()),
        shape);
  } else {
    for (const auto& s : slices) joined.append(reinterpret_cast<const char*>(s.begin()), s.size());
    ns = ReadRequest(joined, shape);
  }
  if (!ns.ok()) return ns.status();
  return std::string(*ns);
}

}  // namespace prism::proxy
