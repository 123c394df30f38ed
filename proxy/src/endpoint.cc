#include "endpoint.h"

#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>
#include <grpcpp/support/byte_buffer.h>

#include <vector>

#include "wire.h"

namespace prism::proxy {

std::shared_ptr<const Endpoint> MakeEndpoint(const std::string& target) {
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
  args.SetMaxReceiveMessageSize(-1);
  args.SetMaxSendMessageSize(-1);
  // A channel of its own (not shared with other channels to the same target).
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  // No gRPC-level retries: the proxy never replays a forwarded call (a Set
  // must not run twice), and the retry filter buffers every message - 6% of
  // the proxy's instructions per call (callgrind, docs/benchmarks.md).
  args.SetInt(GRPC_ARG_ENABLE_RETRIES, 0);
  auto e = std::make_shared<Endpoint>();
  e->target = target;
  e->channel = grpc::CreateCustomChannel(target, grpc::InsecureChannelCredentials(), args);
  e->stub = std::make_unique<grpc::GenericStub>(e->channel);
  e->server = prism::grpc_tracing::ParseTarget(target);
  return e;
}

bool IsServingResponse(std::string_view bytes) {
  constexpr uint64_t kServing = 1;  // HealthCheckResponse.ServingStatus.SERVING
  absl::StatusOr<uint64_t> status = ReadVarintField(bytes, 1);
  return status.ok() && *status == kServing;
}

void GrpcHealthChecker::Check(std::shared_ptr<const Endpoint> endpoint,
                              std::chrono::milliseconds timeout,
                              std::function<void(bool serving)> done) {
  // Owned by the call and deleted when it completes: the supervisor does
  // not wait for it (a check that hangs ends at its deadline).
  struct Call {
    std::shared_ptr<const Endpoint> endpoint;
    std::function<void(bool)> done;
    grpc::ClientContext ctx;
    grpc::ByteBuffer request, response;
  };
  auto* call = new Call{std::move(endpoint), std::move(done), {}, {}, {}};
  call->ctx.set_deadline(std::chrono::system_clock::now() + timeout);
  grpc::Slice empty;  // HealthCheckRequest{service: ""} is zero bytes
  call->request = grpc::ByteBuffer(&empty, 1);
  call->endpoint->stub->UnaryCall(&call->ctx, "/grpc.health.v1.Health/Check", grpc::StubOptions(),
                                  &call->request, &call->response, [call](grpc::Status s) {
                                    bool serving = false;
                                    std::vector<grpc::Slice> slices;
                                    if (s.ok() && call->response.Dump(&slices).ok()) {
                                      std::string bytes;
                                      for (const auto& slice : slices) {
                                        bytes.append(reinterpret_cast<const char*>(slice.begin()),
                                                     slice.size());
                                      }
                                      serving = IsServingResponse(bytes);
                                    }
                                    std::function<void(bool)> done = std::move(call->done);
                                    delete call;
                                    done(serving);
                                  });
}

}  // namespace prism::proxy
