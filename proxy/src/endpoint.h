#pragma once
// Reaching one plugin: its channel and generic stub (Endpoint), and the
// grpc.health.v1 check the supervisor runs against it.
//
// Thread-safety: an Endpoint is immutable once built and shared by every
// request (shared_ptr). GrpcHealthChecker may be called from any thread;
// its checks run concurrently on gRPC's threads, each with its own deadline,
// so a plugin that hangs delays no other plugin's check.

#include <grpcpp/channel.h>
#include <grpcpp/generic/generic_stub.h>

#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "prism/grpc_tracing/semconv.h"
#include "prism/tracing/attributes.h"

namespace prism::proxy {

// What a request needs to reach a plugin; immutable once published.
struct Endpoint {
  std::shared_ptr<grpc::Channel> channel;
  std::unique_ptr<grpc::GenericStub> stub;
  std::string target;                    // gRPC target, e.g. unix:///run/prism-x/0.sock
  prism::grpc_tracing::Endpoint server;  // semconv server.address/port (socket path, port 0)
  // The attributes the proxy's CLIENT spans to this endpoint start with, one
  // shared block per method, and those they end with, made on first use
  // (service.cc, ClientBlocks).
  mutable std::once_flag client_attributes_once;
  mutable std::vector<std::unique_ptr<const prism::grpc_tracing::RpcEndBlocks>> client_attributes;
};

// Builds a channel + generic stub for a gRPC target (fast reconnects, no
// gRPC retries).
std::shared_ptr<const Endpoint> MakeEndpoint(const std::string& target);

class HealthChecker {
 public:
  virtual ~HealthChecker() = default;
  // grpc.health.v1.Health/Check with service "" over `endpoint`. Returns at
  // once; `done(serving)` is called exactly once, on another thread, within
  // `timeout` (true when the answer is SERVING).
  virtual void Check(std::shared_ptr<const Endpoint> endpoint, std::chrono::milliseconds timeout,
                     std::function<void(bool serving)> done) = 0;
};

// The real one: an asynchronous (callback API) unary call per check.
class GrpcHealthChecker final : public HealthChecker {
 public:
  void Check(std::shared_ptr<const Endpoint> endpoint, std::chrono::milliseconds timeout,
             std::function<void(bool serving)> done) override;
};

// A serialized grpc.health.v1.HealthCheckResponse says SERVING (status,
// field 1, is 1). Malformed bytes are not SERVING.
bool IsServingResponse(std::string_view bytes);

}  // namespace prism::proxy
