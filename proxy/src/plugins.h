#pragma once
// Plugin backends: one per namespace. A launched plugin runs as a child
// process on a Unix socket in the proxy's private 0700 runtime directory; the
// supervisor health-checks it (grpc.health.v1) and restarts it with
// exponential backoff after a crash, while other namespaces keep serving.

#include <grpcpp/channel.h>
#include <grpcpp/generic/generic_stub.h>
#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "absl/status/status.h"
#include "config.h"
#include "prism/grpc_tracing/semconv.h"

namespace prism::proxy {

// What a request needs to reach a plugin; immutable once published.
struct Endpoint {
  std::shared_ptr<grpc::Channel> channel;
  std::unique_ptr<grpc::GenericStub> stub;
  std::string target;                    // gRPC target, e.g. unix:///run/prism-x/0.sock
  prism::grpc_tracing::Endpoint server;  // semconv server.address/port (socket path, port 0)
};

class PluginBackend {
 public:
  PluginBackend(NamespaceConfig config, std::string socket_path);

  const std::string& ns() const { return config_.name; }
  // prism-plugin-sqlite, or the address for external plugins.
  const std::string& plugin_name() const { return plugin_name_; }
  bool launched() const { return config_.plugin.launched(); }
  // namespaces.<ns>.slow (adaptive sampling), if set.
  std::optional<std::chrono::milliseconds> slow() const { return config_.slow; }
  // Null while the plugin is down or starting.
  std::shared_ptr<const Endpoint> endpoint() const { return endpoint_.load(); }
  // Why the plugin is unavailable ("restarting after exit status 1").
  std::string down_reason() const;

 private:
  friend class Supervisor;
  enum class State { kIdle, kStarting, kServing, kBackoff, kStopped };

  void Publish(std::shared_ptr<const Endpoint> e) { endpoint_.store(std::move(e)); }
  void SetDownReason(std::string r);

  NamespaceConfig config_;
  std::string plugin_name_;
  std::string socket_path_;  // launched plugins only
  std::string executable_;   // resolved path
  std::atomic<std::shared_ptr<const Endpoint>> endpoint_;
  mutable std::mutex mu_;
  std::string down_reason_;

  // Supervisor thread only.
  State state_ = State::kIdle;
  pid_t pid_ = -1;
  std::shared_ptr<const Endpoint> pending_;  // channel to a starting plugin
  std::chrono::steady_clock::time_point started_at_, serving_since_, next_check_, restart_at_;
  std::chrono::milliseconds backoff_{0};
  int failed_checks_ = 0;
  int restarts_ = 0;
};

class Supervisor {
 public:
  // `runtime_dir` is the private 0700 directory for plugin sockets.
  Supervisor(const Config& config, std::string runtime_dir);
  ~Supervisor();

  // Resolves plugin executables (config plugin_dirs, the proxy's own
  // directory, then PATH); an error names the namespace and the command.
  absl::Status Prepare();
  // Launches the plugins and starts the supervision thread.
  void Start();
  // Waits until every plugin answers its health check (or the deadline).
  bool WaitUntilServing(std::chrono::milliseconds timeout);
  // Stops supervision, then SIGTERM to each plugin, SIGKILL after the stop
  // timeout. Idempotent.
  void Stop();

  PluginBackend* Find(const std::string& ns) const;
  const std::vector<std::unique_ptr<PluginBackend>>& backends() const { return backends_; }

 private:
  void Run();
  void Tick(PluginBackend& b, std::chrono::steady_clock::time_point now);
  void Spawn(PluginBackend& b);
  void OnExit(PluginBackend& b, int wait_status);
  void Kill(PluginBackend& b, int sig);

  SupervisionConfig sup_;
  std::vector<std::string> plugin_dirs_;
  std::string runtime_dir_;
  std::vector<std::unique_ptr<PluginBackend>> backends_;
  std::unordered_map<std::string, PluginBackend*> by_ns_;
  std::thread thread_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;
  bool stopped_ = false;
};

// Builds a channel + generic stub for a gRPC target (fast reconnects).
std::shared_ptr<const Endpoint> MakeEndpoint(const std::string& target);

// grpc.health.v1.Health/Check with service "" over `endpoint`: true when SERVING.
bool CheckHealth(const Endpoint& endpoint, std::chrono::milliseconds timeout);

// Finds an executable: a name with '/' as given; else in `dirs`, the proxy's
// own directory, then $PATH. Empty when not found.
std::string FindExecutable(const std::string& name, const std::vector<std::string>& dirs);

// Every launched plugin's executable can be found (as Supervisor::Prepare
// will look for it); the error names the config line of the command.
absl::Status CheckPluginExecutables(const Config& config);

}  // namespace prism::proxy
