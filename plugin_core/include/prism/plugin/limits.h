#pragma once
// The request limits of the public API (docs/api.md, "Limits"), shared by
// the plugins (validation.h) and the proxy, which checks the namespace before
// it records or routes anything. No dependencies, so fuzz targets can use it.

#include <cstddef>

namespace prism::plugin {

inline constexpr size_t kMaxNamespaceBytes = 256;
inline constexpr size_t kMaxKeyBytes = 4096;               // 4 KiB
inline constexpr size_t kMaxValueBytes = 4 * 1024 * 1024;  // 4 MiB
inline constexpr size_t kMaxBatchItems = 1000;
// gRPC receive and send limit of the proxy and of a plugin: one message
// (request or response) of at most 64 MiB, so a batch of large values fits.
inline constexpr int kMaxMessageBytes = 64 * 1024 * 1024;
// The request metadata (headers) the proxy accepts, counted as HTTP/2 does:
// name + value + 32 bytes per entry, gRPC's own headers included.
inline constexpr int kMaxMetadataBytes = 8 * 1024;

}  // namespace prism::plugin
