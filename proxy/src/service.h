#pragma once
// The proxy's public KeyValue service: a generic (raw bytes) callback service
// that authenticates, routes by namespace and forwards to the plugin.

#include <grpcpp/generic/async_generic_service.h>

#include <atomic>
#include <string>

#include "auth.h"
#include "plugins.h"
#include "prism/tracing/propagation.h"
#include "prism/tracing/tracer.h"

namespace prism::proxy {

inline constexpr const char* kServiceName = "prism.v1.KeyValue";

struct MethodInfo {
  const char* path;       // "/prism.v1.KeyValue/Get"
  const char* name;       // "Get"
  const char* span_name;  // "prism.v1.KeyValue/Get"
  const char* operation;  // "get"
  uint8_t right;          // kRead or kWrite
};

// nullptr for anything but the 7 KeyValue methods.
const MethodInfo* FindMethod(std::string_view path);

struct ServiceOptions {
  std::string listen_host;  // server.address of the SERVER span
  int listen_port = 0;
};

class ProxyService final : public grpc::CallbackGenericService {
 public:
  ProxyService(const Authorizer& auth, const Supervisor& plugins, ServiceOptions options);
  grpc::ServerGenericBidiReactor* CreateReactor(grpc::GenericCallbackServerContext* ctx) override;

  const Authorizer& auth() const { return auth_; }
  const Supervisor& plugins() const { return plugins_; }
  const ServiceOptions& options() const { return options_; }
  // The port actually bound (known only after the server started).
  void set_listen_port(int port) { listen_port_.store(port, std::memory_order_relaxed); }
  int listen_port() const { return listen_port_.load(std::memory_order_relaxed); }
  const prism::tracing::Tracer& tracer() const { return tracer_; }
  const prism::tracing::TextMapPropagator& propagator() const { return *propagator_; }

 private:
  const Authorizer& auth_;
  const Supervisor& plugins_;
  ServiceOptions options_;
  std::atomic<int> listen_port_{0};
  prism::tracing::Tracer tracer_;
  std::shared_ptr<const prism::tracing::TextMapPropagator> propagator_;
};

}  // namespace prism::proxy
