#pragma once
// RPC semantic-convention helpers shared by the interceptors and by code that
// traces calls by hand (the proxy's generic forwarder). The attribute set is
// described in docs/tracing-conventions.md. By default: the legacy names the
// SPEC lists (rpc.system, rpc.service, rpc.method, rpc.grpc.status_code) plus
// the current release-candidate names that do not collide (rpc.system.name,
// rpc.status_code); OTEL_SEMCONV_STABILITY_OPT_IN=rpc keeps only the current
// ones (rpc.method then fully qualified).

#include <grpcpp/support/status.h>

#include <atomic>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

#include "prism/tracing/span.h"

namespace prism::grpc_tracing {

// Instrumentation scope names of the SERVER and CLIENT spans.
inline constexpr std::string_view kInstrumentationName = "prism.grpc_tracing";
inline constexpr std::string_view kClientInstrumentationName = "prism.grpc_tracing";

namespace attr {
inline constexpr prism::tracing::AttributeKey kRpcSystem = "rpc.system";
inline constexpr prism::tracing::AttributeKey kRpcSystemName = "rpc.system.name";
inline constexpr prism::tracing::AttributeKey kRpcService = "rpc.service";
inline constexpr prism::tracing::AttributeKey kRpcMethod = "rpc.method";
inline constexpr prism::tracing::AttributeKey kRpcGrpcStatusCode = "rpc.grpc.status_code";
inline constexpr prism::tracing::AttributeKey kRpcStatusCode = "rpc.status_code";
inline constexpr prism::tracing::AttributeKey kServerAddress = "server.address";
inline constexpr prism::tracing::AttributeKey kServerPort = "server.port";
inline constexpr prism::tracing::AttributeKey kNetworkPeerAddress = "network.peer.address";
inline constexpr prism::tracing::AttributeKey kNetworkPeerPort = "network.peer.port";
inline constexpr prism::tracing::AttributeKey kErrorType = "error.type";
}  // namespace attr

// "/pkg.Service/Method" split into its parts. Anything without the two
// slashes is kept whole as the service with an empty method.
struct MethodName {
  std::string_view full;     // "pkg.Service/Method" (the span name)
  std::string_view service;  // "pkg.Service"
  std::string_view method;   // "Method"
};
MethodName SplitMethod(std::string_view path);

// An endpoint in semantic-convention form. port 0 = none (Unix sockets).
struct Endpoint {
  std::string address;
  int port = 0;
};
// From a channel target: "unix:///run/x.sock" -> {"/run/x.sock", 0},
// "dns:///db.example:50051" -> {"db.example", 50051}, "127.0.0.1:6051",
// "[::1]:6051", "ipv4:10.0.0.1:80", "unix-abstract:name".
Endpoint ParseTarget(std::string_view target);
// A HOST:PORT address as a listen or dial address must be: "host:port",
// "[v6]:port", after an optional "dns:", "dns:///", "ipv4:" or "ipv6:"
// scheme, with a non-empty host and a port of 1-5 digits in 0..65535.
// nullopt for anything else (no port, a bad port, a bare IPv6 address, a
// Unix socket). The strict form of ParseTarget, for validating input.
std::optional<Endpoint> ParseHostPort(std::string_view address);
// From ServerContext::peer() / ClientContext::peer(): "ipv4:127.0.0.1:5555",
// "ipv6:[::1]:5555", "unix:/path" (or "unix:" for an unnamed client socket).
// Thread-safe; each thread keeps its last peer and answer.
Endpoint ParsePeer(std::string_view peer);
// A server span's network.peer.address and network.peer.port for `peer`
// (what ParsePeer gave): `add(key, value)` for each the peer has - no
// address for an unnamed socket, no port for a Unix socket. One rule for
// the live spans, the replayed ones and the proxy's.
template <typename Add>
void ForEachPeerAttribute(const Endpoint& peer, Add&& add) {
  if (!peer.address.empty()) add(attr::kNetworkPeerAddress, std::string_view(peer.address));
  if (peer.port > 0) add(attr::kNetworkPeerPort, int64_t{peer.port});
}

// "OK", "DEADLINE_EXCEEDED", ... ("UNKNOWN" for out-of-range values).
std::string_view StatusCodeName(grpc::StatusCode code);

// The server-side codes the conventions count as errors: UNKNOWN,
// DEADLINE_EXCEEDED, UNIMPLEMENTED, INTERNAL, UNAVAILABLE, DATA_LOSS.
bool IsServerError(grpc::StatusCode code);

// Which RPC attribute names to emit. kBoth is the default (and what
// OTEL_SEMCONV_STABILITY_OPT_IN=rpc/dup asks for); kCurrent is `rpc`.
enum class RpcConventions { kBoth, kCurrent };
// From an OTEL_SEMCONV_STABILITY_OPT_IN value (a comma list; rpc/dup wins).
RpcConventions ParseRpcConventions(std::string_view opt_in);
// The process's choice, read from the environment once.
RpcConventions ActiveRpcConventions();

// The start-time attributes of an RPC span (sampler-relevant ones included).
prism::tracing::Attributes RpcStartAttributes(const MethodName& method, const Endpoint& server,
                                              RpcConventions c = ActiveRpcConventions());

// Records the outcome: rpc.grpc.status_code (int, kBoth only) and
// rpc.status_code (string); on an error (client: any non-OK code; server:
// IsServerError) the span status is ERROR with the status message and
// error.type is the code name.
void SetRpcStatus(prism::tracing::Span& span, const grpc::Status& status, bool server_side,
                  RpcConventions c = ActiveRpcConventions());

// The attributes SetRpcStatus adds for `code`, in its order.
prism::tracing::Attributes RpcStatusAttributes(grpc::StatusCode code, bool server_side,
                                               RpcConventions c = ActiveRpcConventions());

// A span's start block (AttributeBlock) with SetRpcStatus's attributes for
// each status code after it (AttributeBlock::Extend), each made on first
// use: a span that still refers to `start` then ends referring to its
// code's block instead of copying the status attributes in, nor encoding
// them per span. Callgrind, proxied Get, always_on: SetRpcStatus on the
// proxy's two gRPC spans, 828 instructions a call one by one (in place),
// 490 with end blocks; the plugin's SERVER span, 454 and 246
// (docs/benchmarks.md, "Ninth pass").
//
// Thread safety: any number of threads may call For at once.
//
//   static const RpcEndBlocks kEnd(start_block, /*server_side=*/true);
//   SetRpcStatus(span, status, kEnd);
class RpcEndBlocks {
 public:
  RpcEndBlocks(prism::tracing::SharedAttributes start, bool server_side,
               RpcConventions c = ActiveRpcConventions());
  const prism::tracing::SharedAttributes& start() const { return start_; }
  bool server_side() const { return server_side_; }
  RpcConventions conventions() const { return conventions_; }
  // `code`'s block; null for a code outside 0-16. Inline and one acquire
  // load once made (std::call_once cost ~45 instructions a span; callgrind,
  // tenth pass in docs/benchmarks.md).
  const prism::tracing::SharedAttributes* For(grpc::StatusCode code) const {
    const auto i = static_cast<size_t>(code);
    if (i >= kCodes) return nullptr;
    if (made_[i].load(std::memory_order_acquire)) [[likely]] {
      return &blocks_[i];
    }
    return Make(i);
  }

 private:
  static constexpr size_t kCodes = 17;  // OK .. UNAUTHENTICATED
  const prism::tracing::SharedAttributes* Make(size_t code) const;
  prism::tracing::SharedAttributes start_;
  bool server_side_;
  RpcConventions conventions_;
  mutable std::once_flag once_[kCodes];
  mutable std::atomic<bool> made_[kCodes] = {};
  mutable prism::tracing::SharedAttributes blocks_[kCodes];
};

// SetRpcStatus with `end`'s server_side and conventions; a span that still
// refers to end.start() takes its code's block.
void SetRpcStatus(prism::tracing::Span& span, const grpc::Status& status, const RpcEndBlocks& end);

}  // namespace prism::grpc_tracing
