#pragma once
// prism-proxy configuration: the YAML file (docs/config.md documents every
// key), the embedded default, and flag overrides.

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace prism::proxy {

inline constexpr int kDefaultPort = 6051;
inline constexpr const char* kDefaultListen = "127.0.0.1:6051";

// Access rights, a bit set. publish/subscribe (prism.v1.PubSub) are rights
// of their own: read and write (key-value) do not imply them.
enum Right : uint8_t { kNone = 0, kRead = 1, kWrite = 2, kPublish = 4, kSubscribe = 8 };

struct PluginConfig {
  // Exactly one of command / address. A command is launched and supervised
  // by the proxy with `--listen unix://<private dir>/<namespace>.sock` and the
  // settings appended as `--<key> <value>`.
  std::vector<std::string> command;
  std::string command_where;  // "file:line:col" of `command`, for later errors
  std::string address;
  std::map<std::string, std::string> settings;
  bool launched() const { return !command.empty(); }
};

struct NamespaceConfig {
  std::string name;
  PluginConfig plugin;
  // Adaptive sampling: requests of this namespace at least this long keep
  // their trace (default: tracing.adaptive.slow).
  std::optional<std::chrono::milliseconds> slow;
};

struct TokenConfig {
  std::string name;    // for logs and spans (never the token itself)
  std::string sha256;  // lower-case hex of SHA-256(token)
  // namespace (or "*" for all) -> rights
  std::map<std::string, uint8_t> rights;
};

enum class AuthMode {
  kAuto,      // tokens configured: required; none: anonymous on loopback,
              // else a generated token printed at start
  kRequired,  // a valid token always required
  kNone,      // no checks (anonymous gets every right)
};

// tracing.sampler: adaptive (docs/sampling.md).
struct AdaptiveConfig {
  double ratio = 0.01;                  // share of the normal traffic kept
  std::chrono::milliseconds slow{100};  // every request at least this long is kept
  int64_t buffer_mb = 32;               // undecided spans held, per process
  // OTEL_TRACES_SAMPLER_ARG of prism_adaptive; `slow` overrides the global
  // threshold (a namespace's own).
  std::string SamplerArg(std::optional<std::chrono::milliseconds> slow_override = {}) const;
};

struct TracingConfig {
  // Each is exported to the environment as the matching OTEL_* variable
  // unless that variable is already set (the environment wins).
  std::optional<std::string> service_name;       // OTEL_SERVICE_NAME
  std::optional<std::string> sampler;            // OTEL_TRACES_SAMPLER
  std::optional<std::string> sampler_arg;        // OTEL_TRACES_SAMPLER_ARG
  std::optional<std::string> exporters;          // OTEL_TRACES_EXPORTER (comma list)
  std::optional<std::string> otlp_endpoint;      // OTEL_EXPORTER_OTLP_ENDPOINT
  std::optional<std::string> otlp_protocol;      // OTEL_EXPORTER_OTLP_PROTOCOL
  std::optional<std::string> trace_file;         // PRISM_TRACE_FILE
  std::optional<std::string> trace_file_max_mb;  // PRISM_TRACE_FILE_MAX_MB
  // Set with `sampler: adaptive` (exported as OTEL_TRACES_SAMPLER=prism_adaptive
  // and its argument).
  std::optional<AdaptiveConfig> adaptive;
};

struct SupervisionConfig {
  std::chrono::milliseconds health_interval{1000};
  std::chrono::milliseconds health_timeout{500};
  std::chrono::milliseconds start_timeout{10000};
  std::chrono::milliseconds restart_backoff_initial{200};
  std::chrono::milliseconds restart_backoff_max{10000};
  std::chrono::milliseconds stop_timeout{5000};
  // More than max_restarts failures within restart_window: the supervisor
  // gives up on the plugin (0: it never does).
  int max_restarts = 0;
  std::chrono::milliseconds restart_window{60000};
};

// Bounds on what one client, or many, can make the proxy hold (docs/config.md).
struct LimitsConfig {
  int max_concurrent_streams = 100;                   // HTTP/2 streams per connection
  int max_connections = 256;                          // open client connections (TCP)
  std::chrono::milliseconds default_deadline{30000};  // for calls that carry none
  int memory_mb = 512;                                // grpc++ resource quota of the server
};

struct Config {
  std::string source;  // file path, or "embedded default"
  std::string listen = kDefaultListen;
  std::string tls_cert_file;
  std::string tls_key_file;
  std::string data_dir;  // default $PRISM_DATA_DIR or ./.prism
  std::vector<NamespaceConfig> namespaces;
  std::vector<TokenConfig> tokens;
  AuthMode auth_mode = AuthMode::kAuto;
  TracingConfig tracing;
  SupervisionConfig supervision;
  LimitsConfig limits;
  std::chrono::milliseconds drain_timeout{10000};
  std::vector<std::string> plugin_dirs;  // searched before PATH
};

// Parses YAML text. Errors name the file, line, column and key, e.g.
// "prism.yaml:7:5: namespaces.orders.plugin: set exactly one of 'command' or 'address'".
absl::StatusOr<Config> ParseConfig(const std::string& yaml_text, const std::string& source_name);
absl::StatusOr<Config> LoadConfigFile(const std::string& path);

// The embedded default: namespace `default` on prism-plugin-sqlite in the data
// directory.
Config EmbeddedDefaultConfig(const std::string& data_dir);

// Fills defaults that depend on other keys (a sqlite/other launched plugin
// without data-dir gets <data_dir>), checks cross-key rules.
absl::Status FinalizeConfig(Config& config);

// What is wrong with a gRPC address ("" when nothing is): `unix:PATH`,
// `unix-abstract:NAME`, or `[dns:|ipv4:|ipv6:]HOST:PORT` with no whitespace
// and a port in 1-65535 (0 too when `listening`: any free port).
std::string AddressProblem(std::string_view address, bool listening);
// `unix:PATH` or `unix-abstract:NAME`: a local socket, not TCP. Inline:
// auth.cc is linked without config.cc (proxy/fuzz).
inline bool IsUnixSocketAddress(std::string_view a) {
  return a.rfind("unix:", 0) == 0 || a.rfind("unix-abstract:", 0) == 0;
}

}  // namespace prism::proxy
