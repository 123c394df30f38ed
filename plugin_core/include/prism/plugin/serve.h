#pragma once
// The one call that serves a prism plugin.
//
//   int main(int argc, char** argv) {
//     prism::plugin::PluginDefinition def;
//     def.name = "sqlite";
//     def.settings = {{"data-dir", "directory of the database file", ".", false}};
//     def.make_service = [](const prism::plugin::PluginEnv& env) { ... };
//     return prism::plugin::Serve(argc, argv, std::move(def));
//   }
//
// Command line (what the proxy passes; see docs/api.md "Plugin protocol"):
//   --listen unix:///path/to.sock | --listen 127.0.0.1:PORT   (required)
//   --<setting> VALUE  or  --<setting>=VALUE   for each declared setting
//   --setting KEY=VALUE                        (the same, generic form)
//   --shutdown-timeout-ms N   drain deadline after SIGTERM (default 10000)
//   --help
// Bad flags: a one-line error on stderr and exit code 2.
//
// Serve: sets up tracing from the environment (service.name
// "prism-plugin-<name>" unless OTEL_SERVICE_NAME is set; exporters from
// OTEL_TRACES_EXPORTER, default "file" plus "otlp" when an OTLP endpoint is
// set), builds the gRPC server with the tracing interceptor and the
// grpc.health.v1 service (SERVING), listens, and on SIGTERM/SIGINT stops
// accepting, drains in-flight calls, flushes spans and returns 0. A backend
// that cannot start (make_service fails) or an address that cannot be bound:
// one-line error, an ERROR "prism.plugin.start" span, exit code 1.

#include <grpcpp/impl/service_type.h>

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "prism/tracing/tracer.h"

namespace prism::plugin {

inline constexpr int kExitOk = 0;
inline constexpr int kExitStartFailed = 1;
inline constexpr int kExitUsage = 2;

struct SettingSpec {
  std::string name;  // flag name without "--", e.g. "data-dir"
  std::string help;
  std::string default_value;
  bool required = false;
};

class Settings {
 public:
  Settings() = default;
  explicit Settings(std::map<std::string, std::string> values) : values_(std::move(values)) {}
  // The value (or the declared default); "" when unknown.
  const std::string& Get(const std::string& name) const;
  // An integer setting in [min, max]; INVALID_ARGUMENT naming the flag otherwise.
  absl::StatusOr<int64_t> GetInt(const std::string& name, int64_t min, int64_t max) const;
  const std::map<std::string, std::string>& values() const { return values_; }

 private:
  std::map<std::string, std::string> values_;
};

struct PluginEnv {
  std::string plugin_name;   // "sqlite"
  std::string service_name;  // "prism-plugin-sqlite"
  Settings settings;
  // Tracer for the plugin's own spans (scope "prism.plugin.<name>").
  prism::tracing::Tracer tracer;
};

struct PluginDefinition {
  std::string name;  // short name: "sqlite" -> prism-plugin-sqlite
  std::string description;
  std::vector<SettingSpec> settings;
  // Builds the KeyValue service (sync or callback API) from the settings.
  // An error stops the plugin with exit code 1 and the error's message.
  std::function<absl::StatusOr<std::unique_ptr<grpc::Service>>(const PluginEnv&)> make_service;
  // Called when a stop signal arrives, before the server drains: a service
  // with long-lived streams (a subscription) ends them here, or the drain
  // would wait for them until --shutdown-timeout-ms.
  std::function<void()> on_stopping;
  // Called after the server stopped and drained, before spans are flushed.
  std::function<void()> on_stopped;
};

struct ServeOptions {
  std::string listen;
  int64_t shutdown_timeout_ms = 10000;
  Settings settings;
};

// Parses the command line against the definition. On error the status says
// what is wrong in one line; `--help` gives a status with code CANCELLED and
// the usage text as message.
absl::StatusOr<ServeOptions> ParseCommandLine(int argc, const char* const* argv,
                                              const PluginDefinition& def);

int Serve(int argc, char** argv, PluginDefinition def);

}  // namespace prism::plugin
