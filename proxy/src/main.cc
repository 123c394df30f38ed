// prism-proxy: the gateway. See proxy/README.md and docs/config.md.

#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>
#include <grpcpp/resource_quota.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <thread>

#include "absl/synchronization/mutex.h"
#include "auth.h"
#include "config.h"
#include "log.h"
#include "plugins.h"
#include "preflight.h"
#include "prism/grpc_tracing/semconv.h"
#include "prism/plugin/limits.h"
#include "prism/tracing/adaptive.h"
#include "prism/tracing/exporters/file_exporter.h"
#include "prism/tracing/exporters/setup.h"
#include "prism/tracing/global.h"
#include "prism/tracing/propagation.h"
#include "service.h"

namespace fs = std::filesystem;
using namespace prism::proxy;

namespace {

constexpr int kExitFailure = 1;
constexpr int kExitUsage = 2;
// Default OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT of the proxy and its plugins.
constexpr int kAttributeValueLengthLimit = 4096;

void SetEnvIfUnset(const char* name, const std::optional<std::string>& value) {
  if (!value) return;
  const char* cur = std::getenv(name);
  if (cur && *cur) return;  // the environment wins over the file
  setenv(name, value->c_str(), 1);
}

bool ReadFile(const std::string& path, std::string& out) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return false;
  std::ostringstream s;
  s << in.rdbuf();
  out = s.str();
  return true;
}

std::string MakeRuntimeDir() {
  std::string base = "/tmp";
  if (const char* x = std::getenv("XDG_RUNTIME_DIR"); x && *x && access(x, W_OK) == 0) base = x;
  std::string tmpl = base + "/prism-proxy-XXXXXX";
  std::vector<char> buf(tmpl.begin(), tmpl.end());
  buf.push_back('\0');
  if (!mkdtemp(buf.data())) return {};
  chmod(buf.data(), 0700);  // mkdtemp already does; be explicit
  return buf.data();
}

// A directory the proxy did not create may let other local users read what
// the proxy writes into it (the files themselves are 0600): say so.
void WarnIfShared(const std::string& dir, const char* what) {
  struct stat st;
  if (stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode) || (st.st_mode & 077) == 0) return;
  char mode[8];
  std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
  LogWarn(std::string(what) + " '" + dir + "' is accessible by other users (mode " + mode +
          "); the proxy creates its files there 0600, but run 'chmod 700 " + dir +
          "' to keep file names and older files private");
}

}  // namespace

int main(int argc, char** argv) {
  // Debian's abseil keeps mutex deadlock detection on, which grpc's mutexes
  // pay for on every lock (GraphCycles in profiles); turn it off.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  // Everything the proxy and its plugins (which inherit the mask) create -
  // data directory, SQLite files, trace file, Unix sockets - is for this
  // user only, whatever mode a library asks for (SQLite asks for 0644).
  umask(077);
  CLI::App app{"prism-proxy: the prism data-access gateway (gRPC prism.v1.KeyValue)"};
  std::string config_path, listen, data_dir, tls_cert, tls_key;
  std::vector<std::string> plugin_dirs;
  bool check_only = false;
  app.add_option("-c,--config", config_path,
                 "YAML configuration file (default: the embedded default, see docs/config.md)");
  app.add_option("-l,--listen", listen,
                 "listen address host:port or unix:///path (overrides 'listen'; default " +
                     std::string(kDefaultListen) + ")");
  app.add_option("--data-dir", data_dir,
                 "data directory (overrides 'data_dir'; default $PRISM_DATA_DIR or ./.prism)");
  app.add_option("--tls-cert", tls_cert, "PEM certificate chain file (enables TLS)");
  app.add_option("--tls-key", tls_key, "PEM private key file (enables TLS)");
  app.add_option("--plugin-dir", plugin_dirs, "directory searched first for plugin binaries");
  app.add_flag("--check", check_only, "validate the configuration and exit");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);
    return rc == 0 ? 0 : kExitUsage;
  }

  // ---- configuration
  absl::StatusOr<Config> loaded = config_path.empty()
                                      ? absl::StatusOr<Config>(EmbeddedDefaultConfig(""))
                                      : LoadConfigFile(config_path);
  if (!loaded.ok()) {
    std::cerr << "prism-proxy: invalid configuration: " << loaded.status().message() << "\n";
    return kExitUsage;
  }
  Config config = std::move(*loaded);
  if (!listen.empty()) {
    if (std::string why = AddressProblem(listen, /*listening=*/true); !why.empty()) {
      std::cerr << "prism-proxy: --listen '" << listen << "': " << why << "\n";
      return kExitUsage;
    }
    config.listen = listen;
  }
  if (!data_dir.empty()) config.data_dir = data_dir;
  if (!tls_cert.empty()) config.tls_cert_file = tls_cert;
  if (!tls_key.empty()) config.tls_key_file = tls_key;
  for (auto& d : plugin_dirs) config.plugin_dirs.insert(config.plugin_dirs.begin(), d);
  if (auto s = FinalizeConfig(config); !s.ok()) {
    std::cerr << "prism-proxy: invalid configuration: " << s.message() << "\n";
    return kExitUsage;
  }
  if (auto s = CheckPluginExecutables(config); !s.ok()) {
    std::cerr << "prism-proxy: invalid configuration: " << s.message() << "\n";
    return kExitUsage;
  }
  std::string tls_cert_pem, tls_key_pem;
  if (!config.tls_cert_file.empty()) {
    if (!ReadFile(config.tls_cert_file, tls_cert_pem)) {
      std::cerr << "prism-proxy: invalid configuration: tls.cert_file: cannot read '"
                << config.tls_cert_file << "'\n";
      return kExitUsage;
    }
    if (!ReadFile(config.tls_key_file, tls_key_pem)) {
      std::cerr << "prism-proxy: invalid configuration: tls.key_file: cannot read '"
                << config.tls_key_file << "'\n";
      return kExitUsage;
    }
    if (std::string why = TlsPairProblem(tls_cert_pem, tls_key_pem); !why.empty()) {
      std::cerr << "prism-proxy: invalid configuration: " << why << "\n";
      return kExitUsage;
    }
  }
  if (check_only) {
    std::cout << "prism-proxy: configuration OK (" << config.source << ", "
              << config.namespaces.size() << " namespace(s), " << config.tokens.size()
              << " token(s))\n";
    return 0;
  }

  if (std::string why = ListenProblem(config.listen); !why.empty()) {
    std::cerr << "prism-proxy: cannot listen on " << config.listen << ": " << why << "\n";
    return kExitFailure;
  }

  // ---- data directory and trace file (set before any thread exists: setenv)
  std::error_code ec;
  WarnIfShared(config.data_dir, "data directory");
  fs::create_directories(config.data_dir, ec);
  if (ec) {
    std::cerr << "prism-proxy: cannot create data directory '" << config.data_dir
              << "': " << ec.message() << "\n";
    return kExitFailure;
  }
  // The one trace-file rule (PRISM_TRACE_FILE, tracing.trace_file, the data
  // directory), shared with the plugins and the CLI.
  fs::path trace_file =
      prism::tracing::ResolveTraceFilePath(config.tracing.trace_file.value_or(""), config.data_dir);
  trace_file = fs::absolute(trace_file, ec);
  // Plugins inherit the environment: they append to the same trace file.
  setenv("PRISM_TRACE_FILE", trace_file.c_str(), 1);
  if (config.tracing.adaptive) config.tracing.sampler_arg = config.tracing.adaptive->SamplerArg();
  SetEnvIfUnset("OTEL_TRACES_SAMPLER", config.tracing.sampler);
  SetEnvIfUnset("OTEL_TRACES_SAMPLER_ARG", config.tracing.sampler_arg);
  SetEnvIfUnset("PRISM_TRACE_FILE_MAX_MB", config.tracing.trace_file_max_mb);
  SetEnvIfUnset("OTEL_TRACES_EXPORTER", config.tracing.exporters);
  SetEnvIfUnset("OTEL_EXPORTER_OTLP_ENDPOINT", config.tracing.otlp_endpoint);
  SetEnvIfUnset("OTEL_EXPORTER_OTLP_PROTOCOL", config.tracing.otlp_protocol);
  // Span attributes carry what clients send (namespaces, ids, messages): a
  // bounded length unless the user chose one (the SDK's default is none).
  if (!std::getenv("OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT")) {
    SetEnvIfUnset("OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT", std::to_string(kAttributeValueLengthLimit));
  }
  std::string service_name = config.tracing.service_name.value_or("prism-proxy");

  // ---- auth policy
  bool loopback = IsLoopbackListenAddress(config.listen);
  bool anonymous = false;
  std::string generated_token;
  std::vector<TokenConfig> tokens = config.tokens;
  std::string auth_line;
  switch (config.auth_mode) {
    case AuthMode::kNone:
      anonymous = true;
      auth_line = "auth: off (auth.mode: none) - every caller has every right";
      break;
    case AuthMode::kRequired:
      auth_line = "auth: a token is required (" + std::to_string(tokens.size()) + " configured)";
      break;
    case AuthMode::kAuto:
      if (!tokens.empty()) {
        auth_line = "auth: a token is required (" + std::to_string(tokens.size()) + " configured)";
      } else if (loopback) {
        anonymous = true;
        auth_line = "auth: no token needed (listening on loopback only)";
      } else {
        generated_token = GenerateToken();
        if (generated_token.empty()) {
          std::cerr << "prism-proxy: cannot generate an access token\n";
          return kExitFailure;
        }
        tokens.push_back(
            TokenConfig{"generated",
                        Sha256Hex(generated_token),
                        {{"*", static_cast<uint8_t>(kRead | kWrite | kPublish | kSubscribe)}}});
        auth_line =
            "auth: not on loopback and no tokens configured; generated token (valid "
            "until exit, all namespaces): " +
            generated_token + "\n  export PRISM_TOKEN=" + generated_token;
      }
      break;
  }
  Authorizer authorizer(std::move(tokens), anonymous);

  // ---- signals: handled by sigwait in main; every thread inherits the mask
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGUSR1);  // logs the sampling counters
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  // ---- tracing
  prism::tracing::ExporterDefaults defaults;
  defaults.traces_exporter = "file";
  defaults.add_otlp_when_endpoint_set = true;
  defaults.trace_file = trace_file.string();
  // Adaptive sampling (OTEL_TRACES_SAMPLER=prism_adaptive, from the config or
  // the environment): the proxy is the head. It judges latency itself, per
  // namespace, so its processor's own latency rule is off.
  std::chrono::milliseconds slow_default{0};
  if (auto adaptive = prism::tracing::AdaptiveOptionsFromEnvironment(
          prism::tracing::AdaptiveOptions::Role::kHead)) {
    slow_default = adaptive->slow;
    adaptive->slow = std::chrono::milliseconds(0);
    defaults.adaptive = std::move(*adaptive);
  }
  auto provider = prism::tracing::InitTracingFromEnvironment(service_name, defaults);
  prism::tracing::SetGlobalPropagator(prism::tracing::PropagatorFromEnvironment());
  auto exporters = prism::tracing::TracesExportersFromEnvironment(defaults);
  // A trace file that cannot be written is a configuration error, found now
  // rather than at the first export with the proxy already serving.
  if (!provider->disabled() &&
      std::find(exporters.begin(), exporters.end(), "file") != exporters.end()) {
    if (std::string why = prism::tracing::TraceFileWriteError(trace_file.string()); !why.empty()) {
      std::cerr << "prism-proxy: cannot write the trace file '" << trace_file.string()
                << "' (tracing.trace_file, PRISM_TRACE_FILE): " << why << "\n";
      provider->Shutdown();
      return kExitFailure;
    }
  }

  // ---- plugins
  std::string runtime_dir = MakeRuntimeDir();
  if (runtime_dir.empty()) {
    std::cerr << "prism-proxy: cannot create a private runtime directory for plugin sockets\n";
    return kExitFailure;
  }
  Supervisor supervisor(config, runtime_dir);
  if (auto s = supervisor.Prepare(); !s.ok()) {
    std::cerr << "prism-proxy: " << s.message() << "\n";
    fs::remove_all(runtime_dir, ec);
    return kExitFailure;
  }
  supervisor.Start();
  if (!supervisor.WaitUntilServing(config.supervision.start_timeout)) {
    LogWarn("some plugins are not serving yet; their namespaces answer UNAVAILABLE until they are");
  }

  // ---- server
  // Host and port of the listen address, for the banner and the SERVER
  // spans' server.address/port (a Unix socket: its path, port 0).
  const prism::grpc_tracing::Endpoint listen_at = prism::grpc_tracing::ParseTarget(config.listen);
  const std::string& host = listen_at.address;
  const int port = listen_at.port;
  ServiceOptions sopts;
  sopts.listen_host = host;
  sopts.listen_port = port;
  sopts.default_deadline = config.limits.default_deadline;
  sopts.slow_default = slow_default;
  ProxyService service(authorizer, supervisor, sopts);
  grpc::EnableDefaultHealthCheckService(true);
  grpc::ServerBuilder builder;
  std::shared_ptr<grpc::ServerCredentials> creds;
  if (!tls_cert_pem.empty()) {
    grpc::SslServerCredentialsOptions ssl;
    ssl.pem_key_cert_pairs.push_back({tls_key_pem, tls_cert_pem});
    creds = grpc::SslServerCredentials(ssl);
  } else {
    creds = grpc::InsecureServerCredentials();
  }
  int selected_port = 0;
  builder.AddListeningPort(config.listen, creds, &selected_port);
  UnknownMethodService unknown_methods;
  ProxyPubSubService pubsub(service);
  builder.RegisterService(&service);
  builder.RegisterService(&pubsub);
  builder.RegisterCallbackGenericService(&unknown_methods);
  // What one client, or many, can make the server hold (docs/config.md,
  // "Limits"): messages as large as docs/api.md promises and no larger, a
  // bounded number of streams per connection (each one pending before
  // auth costs memory), and a memory quota for the whole server.
  builder.SetMaxReceiveMessageSize(prism::plugin::kMaxMessageBytes);
  builder.SetMaxSendMessageSize(prism::plugin::kMaxMessageBytes);
  builder.AddChannelArgument(GRPC_ARG_MAX_CONCURRENT_STREAMS, config.limits.max_concurrent_streams);
  builder.AddChannelArgument(GRPC_ARG_MAX_METADATA_SIZE, prism::plugin::kMaxMetadataBytes);
  grpc::ResourceQuota quota("prism-proxy");
  quota.Resize(static_cast<size_t>(config.limits.memory_mb) << 20);
  builder.SetResourceQuota(quota);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (!server || (config.listen.rfind("unix:", 0) != 0 && selected_port == 0)) {
    std::cerr << "prism-proxy: cannot listen on " << config.listen
              << " (address in use or invalid?)\n";
    supervisor.Stop();
    provider->Shutdown();
    fs::remove_all(runtime_dir, ec);
    return kExitFailure;
  }
  std::string where = config.listen;
  if (selected_port != 0 && selected_port != port) {
    where = (host.find(':') != std::string::npos ? "[" + host + "]" : host) + ":" +
            std::to_string(selected_port);
  }
  if (selected_port) {
    // Spans report the real port (e.g. when listening on :0).
    service.set_listen_port(selected_port);
  }

  std::ostringstream banner;
  banner << "prism-proxy listening on " << where << (tls_cert_pem.empty() ? "" : " (TLS)")
         << " (config: " << config.source << ")\n";
  for (const auto& b : supervisor.backends()) {
    banner << "  namespace " << b->ns() << " -> " << b->plugin_name()
           << (b->launched() ? " (launched)" : "") << "\n";
  }
  banner << "  " << auth_line << "\n";
  bool any = false;
  for (const auto& e : provider->disabled() ? std::vector<std::string>{} : exporters) {
    if (e == "file") {
      banner << "  traces -> " << trace_file.string() << " (prism trace ls)\n";
    } else if (e == "otlp") {
      const char* ep = std::getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT");
      if (!ep || !*ep) ep = std::getenv("OTEL_EXPORTER_OTLP_ENDPOINT");
      banner << "  traces -> OTLP " << (ep && *ep ? ep : "(default endpoint)") << "\n";
    } else if (e == "console") {
      banner << "  traces -> console (stderr)\n";
    } else {
      continue;
    }
    any = true;
  }
  if (!any || provider->disabled()) banner << "  traces -> nowhere (tracing off)\n";
  if (!provider->disabled() && any) {
    if (const prism::tracing::AdaptiveSampling* a = service.tracer().adaptive()) {
      char ratio[32];
      std::snprintf(ratio, sizeof(ratio), "%g", a->options().ratio * 100);
      banner << "  sampling: adaptive - every error, every request over " << slow_default.count()
             << " ms, " << ratio << " % of the rest (docs/sampling.md)\n";
    } else {
      const char* s = std::getenv("OTEL_TRACES_SAMPLER");
      banner << "  sampling: " << (s && *s ? s : "parentbased_always_on")
             << (std::find(exporters.begin(), exporters.end(), "otlp") != exporters.end() &&
                         !(s && *s)
                     ? " - every request; for production set tracing.sampler: adaptive "
                       "(docs/sampling.md)"
                     : "")
             << "\n";
    }
  }
  std::cout << banner.str() << std::flush;

  // ---- run until SIGTERM / SIGINT
  int sig = 0;
  while (sigwait(&signals, &sig) != 0 || sig == SIGUSR1) {
    if (sig == SIGUSR1) LogInfo(service.SamplingCounters());
    sig = 0;
  }
  LogInfo(std::string("received ") + (sig == SIGTERM ? "SIGTERM" : "SIGINT") +
          "; draining in-flight calls");
  // Subscriptions never end by themselves: end them (UNAVAILABLE to their
  // callers) rather than hold the drain for drain_timeout.
  pubsub.CancelAll();
  server->Shutdown(std::chrono::system_clock::now() + config.drain_timeout);
  server->Wait();
  LogInfo("in-flight calls drained; stopping plugins and flushing spans");
  // The proxy's spans are all ended now: export them while the plugins stop,
  // so the stop takes at most drain_timeout + max(stop_timeout, 5 s) even
  // with a collector that is down.
  bool flushed = true;
  std::thread flush([&] { flushed = provider->Shutdown(std::chrono::seconds(5)); });
  supervisor.Stop();
  flush.join();
  if (!flushed) LogWarn("span export did not finish within the 5 s flush bound");
  fs::remove_all(runtime_dir, ec);
  if (service.tracer().adaptive()) LogInfo(service.TriggerCounters());
  LogInfo("stopped");
  return 0;
}
