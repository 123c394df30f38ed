#include "prism/grpc_tracing/semconv.h"

#include <algorithm>
#include <charconv>
#include <string>
#include <vector>

#include "prism/tracing/env.h"

namespace prism::grpc_tracing {
namespace {

int ParsePort(std::string_view s) {
  int port = 0;
  if (s.empty() || s.size() > 5) return 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), port);
  if (ec != std::errc() || p != s.data() + s.size() || port < 0 || port > 65535) return 0;
  return port;
}

// "host:port", "[v6]:port", "host" -> endpoint.
Endpoint SplitHostPort(std::string_view hp) {
  Endpoint e;
  if (!hp.empty() && hp.front() == '[') {
    size_t close = hp.find(']');
    if (close == std::string_view::npos) {
      e.address = std::string(hp);
      return e;
    }
    e.address = std::string(hp.substr(1, close - 1));
    if (close + 1 < hp.size() && hp[close + 1] == ':') e.port = ParsePort(hp.substr(close + 2));
    return e;
  }
  size_t colon = hp.rfind(':');
  if (colon != std::string_view::npos && hp.find(':') == colon) {
    e.address = std::string(hp.substr(0, colon));
    e.port = ParsePort(hp.substr(colon + 1));
  } else {
    e.address = std::string(hp);  // no port, or a bare IPv6 address
  }
  return e;
}

bool ConsumePrefix(std::string_view& s, std::string_view prefix) {
  if (s.substr(0, prefix.size()) != prefix) return false;
  s.remove_prefix(prefix.size());
  return true;
}

}  // namespace

MethodName SplitMethod(std::string_view path) {
  MethodName m;
  std::string_view full = path;
  if (!full.empty() && full.front() == '/') full.remove_prefix(1);
  m.full = full;
  size_t slash = full.find('/');
  if (slash == std::string_view::npos) {
    m.service = full;
  } else {
    m.service = full.substr(0, slash);
    m.method = full.substr(slash + 1);
  }
  return m;
}

Endpoint ParseTarget(std::string_view target) {
  std::string_view t = target;
  if (ConsumePrefix(t, "unix:")) {
    // unix:///abs/path, unix:relative/path, unix:/abs/path
    if (t.substr(0, 2) == "//") t.remove_prefix(2);
    return Endpoint{std::string(t), 0};
  }
  if (ConsumePrefix(t, "unix-abstract:")) return Endpoint{std::string(t), 0};
  if (ConsumePrefix(t, "ipv4:") || ConsumePrefix(t, "ipv6:")) {
    size_t comma = t.find(',');  // address lists: the first one
    return SplitHostPort(t.substr(0, comma));
  }
  size_t scheme = t.find("://");
  if (scheme != std::string_view::npos) {
    t.remove_prefix(scheme + 3);
    size_t slash = t.find('/');  // dns://authority/host:port
    if (slash != std::string_view::npos) t.remove_prefix(slash + 1);
  } else if (ConsumePrefix(t, "dns:")) {
  }
  return SplitHostPort(t);
}

std::optional<Endpoint> ParseHostPort(std::string_view address) {
  std::string_view a = address;
  if (!ConsumePrefix(a, "dns:///") && !ConsumePrefix(a, "dns:") && !ConsumePrefix(a, "ipv4:")) {
    ConsumePrefix(a, "ipv6:");
  }
  const size_t colon = a.rfind(':');
  if (colon == std::string_view::npos) return std::nullopt;
  // One ':' outside brackets: "::1:80" is not host:port.
  if (!a.empty() && a.front() == '[' ? a.find("]:") != colon - 1 : a.find(':') != colon) {
    return std::nullopt;
  }
  const std::string_view digits = a.substr(colon + 1);
  if (digits.empty() || digits.size() > 5 ||
      !std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return std::nullopt;
  }
  int port = 0;
  std::from_chars(digits.data(), digits.data() + digits.size(), port);
  if (port > 65535) return std::nullopt;
  Endpoint e = SplitHostPort(a);
  if (e.address.empty()) return std::nullopt;
  e.port = port;
  return e;
}

static Endpoint ParsePeerUncached(std::string_view peer) {
  std::string_view p = peer;
  if (ConsumePrefix(p, "unix:")) return Endpoint{std::string(p), 0};
  if (ConsumePrefix(p, "unix-abstract:")) return Endpoint{std::string(p), 0};
  // gRPC writes the peer as a URI, "ipv6:%5B::1%5D:5555" (1.51, its own
  // listener and external connections alike), a zone as %25.
  if (ConsumePrefix(p, "ipv6:")) return SplitHostPort(tracing::env::PercentDecode(p));
  ConsumePrefix(p, "ipv4:");
  return SplitHostPort(p);
}

Endpoint ParsePeer(std::string_view peer) {
  // The calls of one connection repeat its peer: the thread's last answer
  // is kept (a compare and a copy instead of the parse).
  thread_local std::string last_peer;
  thread_local Endpoint last;
  if (!last_peer.empty() && peer == last_peer) return last;
  last = ParsePeerUncached(peer);
  last_peer.assign(peer);
  return last;
}

std::string_view StatusCodeName(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::OK:
      return "OK";
    case grpc::StatusCode::CANCELLED:
      return "CANCELLED";
    case grpc::StatusCode::UNKNOWN:
      return "UNKNOWN";
    case grpc::StatusCode::INVALID_ARGUMENT:
      return "INVALID_ARGUMENT";
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      return "DEADLINE_EXCEEDED";
    case grpc::StatusCode::NOT_FOUND:
      return "NOT_FOUND";
    case grpc::StatusCode::ALREADY_EXISTS:
      return "ALREADY_EXISTS";
    case grpc::StatusCode::PERMISSION_DENIED:
      return "PERMISSION_DENIED";
    case grpc::StatusCode::RESOURCE_EXHAUSTED:
      return "RESOURCE_EXHAUSTED";
    case grpc::StatusCode::FAILED_PRECONDITION:
      return "FAILED_PRECONDITION";
    case grpc::StatusCode::ABORTED:
      return "ABORTED";
    case grpc::StatusCode::OUT_OF_RANGE:
      return "OUT_OF_RANGE";
    case grpc::StatusCode::UNIMPLEMENTED:
      return "UNIMPLEMENTED";
    case grpc::StatusCode::INTERNAL:
      return "INTERNAL";
    case grpc::StatusCode::UNAVAILABLE:
      return "UNAVAILABLE";
    case grpc::StatusCode::DATA_LOSS:
      return "DATA_LOSS";
    case grpc::StatusCode::UNAUTHENTICATED:
      return "UNAUTHENTICATED";
    default:
      return "UNKNOWN";
  }
}

bool IsServerError(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::UNKNOWN:
    case grpc::StatusCode::DEADLINE_EXCEEDED:
    case grpc::StatusCode::UNIMPLEMENTED:
    case grpc::StatusCode::INTERNAL:
    case grpc::StatusCode::UNAVAILABLE:
    case grpc::StatusCode::DATA_LOSS:
      return true;
    default:
      return false;
  }
}

RpcConventions ParseRpcConventions(std::string_view opt_in) {
  const std::vector<std::string> items = prism::tracing::env::SplitList(opt_in);
  auto has = [&](std::string_view v) {
    return std::find(items.begin(), items.end(), v) != items.end();
  };
  if (has("rpc/dup")) return RpcConventions::kBoth;
  return has("rpc") ? RpcConventions::kCurrent : RpcConventions::kBoth;
}

RpcConventions ActiveRpcConventions() {
  static const RpcConventions c =
      ParseRpcConventions(prism::tracing::env::Get("OTEL_SEMCONV_STABILITY_OPT_IN").value_or(""));
  return c;
}

prism::tracing::Attributes RpcStartAttributes(const MethodName& method, const Endpoint& server,
                                              RpcConventions c) {
  prism::tracing::Attributes a;
  // Room for what a span usually gets later (peer, status, a few of the
  // caller's own): one allocation instead of regrowing.
  a.reserve(16);
  namespace pt = prism::tracing;
  if (c == RpcConventions::kCurrent) {
    pt::AppendString(a, attr::kRpcSystemName, "grpc");
    pt::AppendString(a, attr::kRpcMethod, method.full);
  } else {
    pt::AppendString(a, attr::kRpcSystem, "grpc");
    pt::AppendString(a, attr::kRpcSystemName, "grpc");
    pt::AppendString(a, attr::kRpcService, method.service);
    pt::AppendString(a, attr::kRpcMethod, method.method);
  }
  if (!server.address.empty()) pt::AppendString(a, attr::kServerAddress, server.address);
  if (server.port > 0) pt::AppendInt(a, attr::kServerPort, server.port);
  return a;
}

namespace {
// Whether `code` makes the span an error (SetRpcStatus).
bool IsRpcError(grpc::StatusCode code, bool server_side) {
  return server_side ? IsServerError(code) : code != grpc::StatusCode::OK;
}
}  // namespace

prism::tracing::Attributes RpcStatusAttributes(grpc::StatusCode code, bool server_side,
                                               RpcConventions c) {
  prism::tracing::Attributes a;
  a.reserve(3);
  if (c == RpcConventions::kBoth) {
    prism::tracing::AppendInt(a, attr::kRpcGrpcStatusCode, static_cast<int64_t>(code));
  }
  std::string_view name = StatusCodeName(code);
  prism::tracing::AppendString(a, attr::kRpcStatusCode, name);
  if (IsRpcError(code, server_side)) prism::tracing::AppendString(a, attr::kErrorType, name);
  return a;
}

void SetRpcStatus(prism::tracing::Span& span, const grpc::Status& status, bool server_side,
                  RpcConventions c) {
  if (!span.IsRecording()) return;
  const grpc::StatusCode code = status.error_code();
  span.SetAttributes(RpcStatusAttributes(code, server_side, c));
  if (IsRpcError(code, server_side)) {
    span.SetStatus(prism::tracing::StatusCode::kError, status.error_message());
  }
}

RpcEndBlocks::RpcEndBlocks(prism::tracing::SharedAttributes start, bool server_side,
                           RpcConventions c)
    : start_(std::move(start)), server_side_(server_side), conventions_(c) {}

const prism::tracing::SharedAttributes* RpcEndBlocks::Make(size_t i) const {
  std::call_once(once_[i], [&] {
    blocks_[i] = prism::tracing::AttributeBlock::Extend(
        start_, RpcStatusAttributes(static_cast<grpc::StatusCode>(i), server_side_, conventions_));
    made_[i].store(true, std::memory_order_release);
  });
  return &blocks_[i];
}

void SetRpcStatus(prism::tracing::Span& span, const grpc::Status& status, const RpcEndBlocks& end) {
  const prism::tracing::SpanData* data = span.data();
  if (data == nullptr) return;
  const prism::tracing::SharedAttributes* block =
      end.start() && data->shared_attributes == end.start() ? end.For(status.error_code())
                                                            : nullptr;
  if (block == nullptr) {
    SetRpcStatus(span, status, end.server_side(), end.conventions());
    return;
  }
  span.SetAttributes(*block);
  if (IsRpcError(status.error_code(), end.server_side())) {
    span.SetStatus(prism::tracing::StatusCode::kError, status.error_message());
  }
}

}  // namespace prism::grpc_tracing
