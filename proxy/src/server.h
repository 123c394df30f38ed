#pragma once
// ProxyServer: one running prism-proxy, built from a parsed configuration.
// It owns, in start order, the data directory and trace file, tracing (the
// SDK configured through ExporterDefaults, never through setenv), the auth
// policy, the plugins' Supervisor and the gRPC server. main.cc is only
// flags, signals and this class (docs/request-path.md).
//
// Thread-safety: Start and Shutdown from one thread (main); Banner and the
// counters from any thread once started. Starts no thread before Start, so
// the caller can block signals first (every thread inherits the mask).

#include <grpcpp/server.h>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "auth.h"
#include "config.h"
#include "endpoint.h"
#include "environment.h"
#include "launcher.h"
#include "listener.h"
#include "plugins.h"
#include "prism/tracing/tracer.h"
#include "service.h"

namespace prism::proxy {

struct TlsMaterial {
  std::string cert_pem, key_pem;  // both empty: no TLS
};

// Reads tls.cert_file / tls.key_file and checks they belong together;
// errors name the key (an invalid configuration).
absl::StatusOr<TlsMaterial> LoadTls(const Config& config);

class ProxyServer {
 public:
  // Replaceable parts, for tests; the defaults are the real ones.
  struct Options {
    std::shared_ptr<ProcessLauncher> launcher;          // PosixLauncher
    std::shared_ptr<HealthChecker> health;              // GrpcHealthChecker
    std::optional<std::vector<std::string>> inherited;  // ProcessEnvironment()
  };
  // `config` after FinalizeConfig (and CheckPluginExecutables).
  ProxyServer(Config config, TlsMaterial tls, Options options);
  ProxyServer(Config config, TlsMaterial tls)
      : ProxyServer(std::move(config), std::move(tls), {}) {}
  ~ProxyServer();

  // Everything up to serving. An error says what could not be done (the
  // proxy exits 1); whatever was started is stopped again.
  absl::Status Start();
  // What the proxy prints once serving: address, namespaces, auth, traces.
  std::string Banner() const;
  // SIGUSR1's log line (adaptive sampling counters).
  std::string SamplingCounters() const;
  // Drains in-flight calls (drain_timeout), then stops the plugins while
  // the spans are flushed (at most 5 s). Idempotent.
  void Shutdown();

  const Config& config() const { return config_; }
  const std::string& trace_file() const { return trace_file_; }

 private:
  absl::Status StartTracing();
  absl::Status StartAuth();
  absl::Status StartServer();
  void Cleanup();

  Config config_;
  TlsMaterial tls_;
  Options options_;
  TracingEnvironment tracing_env_;
  std::string trace_file_;
  std::shared_ptr<prism::tracing::TracerProvider> provider_;
  std::vector<std::string> exporters_;
  std::chrono::milliseconds slow_default_{0};
  std::unique_ptr<Authorizer> authorizer_;
  std::string auth_line_;
  std::string runtime_dir_;
  std::unique_ptr<Supervisor> supervisor_;
  std::unique_ptr<ProxyService> service_;
  std::unique_ptr<ProxyPubSubService> pubsub_;  // destroyed before service_
  std::unique_ptr<UnknownMethodService> unknown_methods_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<TcpListener> listener_;  // TCP listen addresses; stopped before server_
  std::string where_;                      // the address actually bound
  bool shut_down_ = false;
};

}  // namespace prism::proxy
