#pragma once
// Plugin backends: one per namespace. A launched plugin runs as a child
// process on a Unix socket in the proxy's private 0700 runtime directory; the
// supervisor health-checks it (grpc.health.v1) and restarts it with
// exponential backoff after a crash, while other namespaces keep serving.
//
// The parts, each replaceable in tests (proxy/test/supervisor_test.cc):
// processes through a ProcessLauncher (launcher.h), health checks through a
// HealthChecker (endpoint.h; asynchronous, one deadline per check), time
// through an injected clock, and every decision through the pure
// Step(state, event, now) of restart_policy.h.
//
// Thread-safety: the supervisor's work runs on its one thread (or on the
// caller's, through Poll, when Start was not called). Find, backends and a
// PluginBackend's getters are safe from any thread; a PluginBackend lives as
// long as its Supervisor.

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "absl/status/status.h"
#include "config.h"
#include "endpoint.h"
#include "environment.h"
#include "launcher.h"
#include "restart_policy.h"

namespace prism::proxy {

class PluginBackend {
 public:
  PluginBackend(NamespaceConfig config, std::string socket_path);

  const std::string& ns() const { return config_.name; }
  // prism-plugin-sqlite, or the address for external plugins.
  const std::string& plugin_name() const { return plugin_name_; }
  // The routing span's attributes once this backend is chosen
  // (prism.namespace, prism.plugin), shared by every call.
  const prism::tracing::SharedAttributes& route_attributes() const { return route_attributes_; }
  // The auth span's attributes for a call needing `right` by the token
  // `principal_index` (-1: anonymous) named `principal`, or by nobody
  // authenticated (principal empty): prism.namespace, prism.access and
  // prism.principal, one shared block per pair made on first use. Null
  // once kMaxAuthBlocks pairs have one: the span then gets them one by one.
  const prism::tracing::SharedAttributes* auth_attributes(
      uint8_t right, int principal_index, std::optional<std::string_view> principal) const;
  static constexpr size_t kMaxAuthBlocks = 256;
  bool launched() const { return config_.plugin.launched(); }
  // namespaces.<ns>.slow (adaptive sampling), if set.
  std::optional<std::chrono::milliseconds> slow() const { return config_.slow; }
  // Null while the plugin is down or starting.
  std::shared_ptr<const Endpoint> endpoint() const { return endpoint_.load(); }
  // Why the plugin is unavailable ("restarting after exit status 1").
  std::string down_reason() const;

 private:
  friend class Supervisor;

  void Publish(std::shared_ptr<const Endpoint> e) { endpoint_.store(std::move(e)); }
  void SetDownReason(std::string r);

  NamespaceConfig config_;
  std::string plugin_name_;
  prism::tracing::SharedAttributes route_attributes_;
  // auth_attributes: by (principal_index + 2) << 8 | right. Never erased,
  // so the blocks' addresses stay valid.
  mutable std::mutex auth_mu_;
  mutable std::unordered_map<uint64_t, prism::tracing::SharedAttributes> auth_blocks_;
  std::string socket_path_;  // launched plugins only
  std::string executable_;   // resolved path
  std::atomic<std::shared_ptr<const Endpoint>> endpoint_;
  mutable std::mutex mu_;
  std::string down_reason_;

  // Supervisor thread only.
  size_t index_ = 0;  // in Supervisor::backends()
  PluginState state_;
  pid_t pid_ = -1;
  std::shared_ptr<const Endpoint> pending_;  // published once SERVING
  std::string last_failure_;                 // "exited with status 1", for the log
};

class Supervisor {
 public:
  struct Options {
    std::string runtime_dir;  // the private 0700 directory for plugin sockets
    // Each plugin is executed with PluginEnvironment(inherited, tracing,
    // ...) (environment.h): the plugin protocol.
    std::vector<std::string> inherited;  // "NAME=value"; the proxy's: ProcessEnvironment()
    TracingEnvironment tracing;
    std::shared_ptr<ProcessLauncher> launcher;  // default: PosixLauncher
    std::shared_ptr<HealthChecker> health;      // default: GrpcHealthChecker
    std::function<SteadyTime()> now;            // default: steady_clock::now
  };
  Supervisor(const Config& config, Options options);
  ~Supervisor();

  // Resolves plugin executables (config plugin_dirs, the proxy's own
  // directory, then PATH); an error names the namespace and the command.
  absl::Status Prepare();
  // Starts the supervision thread, which launches the plugins.
  void Start();
  // Waits (in real time) until every launched plugin answers its health
  // check, or the timeout.
  bool WaitUntilServing(std::chrono::milliseconds timeout);
  // Stops supervision, then SIGTERM to each plugin, SIGKILL after the stop
  // timeout. Idempotent.
  void Stop();
  // One round of supervision at the clock's now: health results, exits,
  // then each plugin's tick. The thread calls it every 20 ms and whenever
  // a health check completes; tests without Start call it themselves.
  void Poll();

  PluginBackend* Find(const std::string& ns) const;
  const std::vector<std::unique_ptr<PluginBackend>>& backends() const { return backends_; }

 private:
  // Health results arrive from gRPC's threads; shared with their callbacks
  // so a late one finds it alive after the Supervisor is gone.
  struct Inbox {
    struct Result {
      size_t backend;
      uint64_t generation;
      bool serving;
    };
    std::mutex mu;
    std::condition_variable cv;
    std::vector<Result> results;
    bool stopping = false;
  };

  void Run();
  void Apply(PluginBackend& b, const Event& event, SteadyTime now);
  void Report(PluginBackend& b, Note note);
  bool Spawn(PluginBackend& b);
  void StartCheck(size_t index, std::chrono::milliseconds timeout);

  SupervisionConfig sup_;
  RestartPolicy policy_;
  std::vector<std::string> plugin_dirs_;
  Options options_;
  std::vector<std::unique_ptr<PluginBackend>> backends_;
  std::unordered_map<std::string, PluginBackend*> by_ns_;
  std::shared_ptr<Inbox> inbox_ = std::make_shared<Inbox>();
  std::thread thread_;
  bool stopped_ = false;  // guarded by inbox_->mu
};

// Finds an executable: a name with '/' as given; else in `dirs`, the proxy's
// own directory, then $PATH. Empty when not found.
std::string FindExecutable(const std::string& name, const std::vector<std::string>& dirs);

// Every launched plugin's executable can be found (as Supervisor::Prepare
// will look for it); the error names the config line of the command.
absl::Status CheckPluginExecutables(const Config& config);

}  // namespace prism::proxy
