#include "server.h"

#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>
#include <grpcpp/resource_quota.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "log.h"
#include "preflight.h"
#include "prism/grpc_tracing/semconv.h"
#include "prism/plugin/limits.h"
#include "prism/tracing/adaptive.h"
#include "prism/tracing/exporters/file_exporter.h"
#include "prism/tracing/exporters/setup.h"
#include "prism/tracing/global.h"
#include "prism/tracing/propagation.h"

namespace prism::proxy {
namespace fs = std::filesystem;

namespace {

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

absl::StatusOr<TlsMaterial> LoadTls(const Config& config) {
  TlsMaterial tls;
  if (config.tls_cert_file.empty()) return tls;
  if (!ReadFile(config.tls_cert_file, tls.cert_pem)) {
    return absl::InvalidArgumentError("tls.cert_file: cannot read '" + config.tls_cert_file + "'");
  }
  if (!ReadFile(config.tls_key_file, tls.key_pem)) {
    return absl::InvalidArgumentError("tls.key_file: cannot read '" + config.tls_key_file + "'");
  }
  if (std::string why = TlsPairProblem(tls.cert_pem, tls.key_pem); !why.empty()) {
    return absl::InvalidArgumentError(why);
  }
  return tls;
}

ProxyServer::ProxyServer(Config config, TlsMaterial tls, Options options)
    : config_(std::move(config)), tls_(std::move(tls)), options_(std::move(options)) {}

ProxyServer::~ProxyServer() { Shutdown(); }

absl::Status ProxyServer::Start() {
  if (std::string why = ListenProblem(config_.listen); !why.empty()) {
    return absl::FailedPreconditionError("cannot listen on " + config_.listen + ": " + why);
  }
  std::error_code ec;
  WarnIfShared(config_.data_dir, "data directory");
  fs::create_directories(config_.data_dir, ec);
  if (ec) {
    return absl::FailedPreconditionError("cannot create data directory '" + config_.data_dir +
                                         "': " + ec.message());
  }
  if (auto s = StartTracing(); !s.ok()) return s;
  if (auto s = StartAuth(); !s.ok()) {
    Cleanup();
    return s;
  }

  // ---- plugins
  runtime_dir_ = MakeRuntimeDir();
  if (runtime_dir_.empty()) {
    Cleanup();
    return absl::FailedPreconditionError(
        "cannot create a private runtime directory for plugin sockets");
  }
  Supervisor::Options so;
  so.runtime_dir = runtime_dir_;
  so.inherited = options_.inherited ? *options_.inherited : ProcessEnvironment();
  so.tracing = tracing_env_;
  so.launcher = options_.launcher;
  so.health = options_.health;
  supervisor_ = std::make_unique<Supervisor>(config_, std::move(so));
  if (auto s = supervisor_->Prepare(); !s.ok()) {
    Cleanup();
    return s;
  }
  supervisor_->Start();
  if (!supervisor_->WaitUntilServing(config_.supervision.start_timeout)) {
    LogWarn("some plugins are not serving yet; their namespaces answer UNAVAILABLE until they are");
  }
  if (auto s = StartServer(); !s.ok()) {
    Cleanup();
    return s;
  }
  return absl::OkStatus();
}

absl::Status ProxyServer::StartTracing() {
  // The one trace-file rule (PRISM_TRACE_FILE, tracing.trace_file, the data
  // directory), shared with the plugins and the CLI; absolute, because the
  // plugins append to the same file.
  std::error_code ec;
  fs::path trace_file = prism::tracing::ResolveTraceFilePath(
      config_.tracing.trace_file.value_or(""), config_.data_dir);
  trace_file_ = fs::absolute(trace_file, ec).string();
  tracing_env_ = TracingEnvironmentFor(config_.tracing, trace_file_);

  prism::tracing::ExporterDefaults defaults;
  defaults.traces_exporter = "file";
  defaults.add_otlp_when_endpoint_set = true;
  defaults.trace_file = trace_file_;
  defaults.environment = tracing_env_.defaults;
  // Adaptive sampling (OTEL_TRACES_SAMPLER=prism_adaptive, from the config or
  // the environment): the proxy is the head. It judges latency itself, per
  // namespace, so its processor's own latency rule is off.
  if (auto adaptive = prism::tracing::AdaptiveOptionsFromEnvironment(
          prism::tracing::AdaptiveOptions::Role::kHead, &defaults.environment)) {
    slow_default_ = adaptive->slow;
    adaptive->slow = std::chrono::milliseconds(0);
    defaults.adaptive = std::move(*adaptive);
  }
  provider_ = prism::tracing::InitTracingFromEnvironment(
      config_.tracing.service_name.value_or("prism-proxy"), defaults);
  prism::tracing::SetGlobalPropagator(prism::tracing::PropagatorFromEnvironment());
  exporters_ = prism::tracing::TracesExportersFromEnvironment(defaults);
  // A trace file that cannot be written is a configuration error, found now
  // rather than at the first export with the proxy already serving.
  if (!provider_->disabled() &&
      std::find(exporters_.begin(), exporters_.end(), "file") != exporters_.end()) {
    if (std::string why = prism::tracing::TraceFileWriteError(trace_file_); !why.empty()) {
      provider_->Shutdown();
      provider_.reset();
      return absl::FailedPreconditionError("cannot write the trace file '" + trace_file_ +
                                           "' (tracing.trace_file, PRISM_TRACE_FILE): " + why);
    }
  }
  return absl::OkStatus();
}

absl::Status ProxyServer::StartAuth() {
  bool anonymous = false;
  std::vector<TokenConfig> tokens = config_.tokens;
  switch (config_.auth_mode) {
    case AuthMode::kNone:
      anonymous = true;
      auth_line_ = "auth: off (auth.mode: none) - every caller has every right";
      break;
    case AuthMode::kRequired:
      auth_line_ = "auth: a token is required (" + std::to_string(tokens.size()) + " configured)";
      break;
    case AuthMode::kAuto:
      if (!tokens.empty()) {
        auth_line_ = "auth: a token is required (" + std::to_string(tokens.size()) + " configured)";
      } else if (IsLoopbackListenAddress(config_.listen)) {
        anonymous = true;
        auth_line_ = "auth: no token needed (listening on loopback only)";
      } else {
        std::string generated = GenerateToken();
        if (generated.empty()) return absl::InternalError("cannot generate an access token");
        tokens.push_back(
            TokenConfig{"generated",
                        Sha256Hex(generated),
                        {{"*", static_cast<uint8_t>(kRead | kWrite | kPublish | kSubscribe)}}});
        auth_line_ =
            "auth: not on loopback and no tokens configured; generated token (valid "
            "until exit, all namespaces): " +
            generated + "\n  export PRISM_TOKEN=" + generated;
      }
      break;
  }
  authorizer_ = std::make_unique<Authorizer>(std::move(tokens), anonymous);
  return absl::OkStatus();
}

absl::Status ProxyServer::StartServer() {
  // Host and port of the listen address, for the banner and the SERVER
  // spans' server.address/port (a Unix socket: its path, port 0).
  const prism::grpc_tracing::Endpoint listen_at = prism::grpc_tracing::ParseTarget(config_.listen);
  ServiceOptions sopts;
  sopts.listen_host = listen_at.address;
  sopts.listen_port = listen_at.port;
  sopts.default_deadline = config_.limits.default_deadline;
  sopts.slow_default = slow_default_;
  service_ = std::make_unique<ProxyService>(*authorizer_, *supervisor_, sopts);
  pubsub_ = std::make_unique<ProxyPubSubService>(*service_);
  unknown_methods_ = std::make_unique<UnknownMethodService>();
  grpc::EnableDefaultHealthCheckService(true);
  grpc::ServerBuilder builder;
  std::shared_ptr<grpc::ServerCredentials> creds;
  if (!tls_.cert_pem.empty()) {
    grpc::SslServerCredentialsOptions ssl;
    ssl.pem_key_cert_pairs.push_back({tls_.key_pem, tls_.cert_pem});
    creds = grpc::SslServerCredentials(ssl);
  } else {
    creds = grpc::InsecureServerCredentials();
  }
  // TCP: the proxy's own listener, which bounds the connections
  // (limits.max_connections) before gRPC sees them. A Unix socket (0600,
  // the proxy's user only) is gRPC's.
  const bool unix_socket = IsUnixSocketAddress(config_.listen);
  int selected_port = 0;
  std::unique_ptr<grpc::experimental::ExternalConnectionAcceptor> acceptor;
  if (unix_socket) {
    builder.AddListeningPort(config_.listen, creds, &selected_port);
  } else {
    if (std::string why = EnsureDescriptorsFor(config_.limits.max_connections); !why.empty()) {
      LogWarn(why);
    }
    TcpListener::Options lopts;
    lopts.max_connections = config_.limits.max_connections;
    lopts.warn = [](std::string_view m) { LogWarn(m); };
    auto listener = TcpListener::Bind(listen_at.address, listen_at.port, std::move(lopts));
    if (!listener.ok()) {
      return absl::FailedPreconditionError("cannot listen on " + config_.listen + ": " +
                                           std::string(listener.status().message()));
    }
    listener_ = std::move(*listener);
    selected_port = listener_->port();
    acceptor = builder.experimental().AddExternalConnectionAcceptor(
        grpc::ServerBuilder::experimental_type::ExternalConnectionType::FROM_FD, creds);
  }
  builder.RegisterService(service_.get());
  builder.RegisterService(pubsub_.get());
  builder.RegisterCallbackGenericService(unknown_methods_.get());
  // What one client, or many, can make the server hold (docs/config.md,
  // "Limits"): messages as large as docs/api.md promises and no larger, a
  // bounded number of streams per connection (each one pending before
  // auth costs memory), and a memory quota for the whole server.
  builder.SetMaxReceiveMessageSize(prism::plugin::kMaxMessageBytes);
  builder.SetMaxSendMessageSize(prism::plugin::kMaxMessageBytes);
  builder.AddChannelArgument(GRPC_ARG_MAX_CONCURRENT_STREAMS,
                             config_.limits.max_concurrent_streams);
  builder.AddChannelArgument(GRPC_ARG_MAX_METADATA_SIZE, prism::plugin::kMaxMetadataBytes);
  grpc::ResourceQuota quota("prism-proxy");
  quota.Resize(static_cast<size_t>(config_.limits.memory_mb) << 20);
  builder.SetResourceQuota(quota);
  server_ = builder.BuildAndStart();
  if (!server_ || (!unix_socket && selected_port == 0)) {
    server_.reset();
    listener_.reset();
    return absl::FailedPreconditionError("cannot listen on " + config_.listen +
                                         " (address in use or invalid?)");
  }
  if (listener_) {
    // The acceptor is gRPC's; it lives as long as the builder's server.
    listener_->Start([a = std::shared_ptr(std::move(acceptor))](int fd, int listen_fd) {
      grpc::experimental::ExternalConnectionAcceptor::NewConnectionParameters p;
      p.listener_fd = listen_fd;
      p.fd = fd;
      a->HandleNewConnection(&p);
    });
  }
  where_ = config_.listen;
  const std::string& host = listen_at.address;
  if (selected_port != 0 && selected_port != listen_at.port) {
    where_ = (host.find(':') != std::string::npos ? "[" + host + "]" : host) + ":" +
             std::to_string(selected_port);
  }
  // Spans report the real port (e.g. when listening on :0).
  if (selected_port) service_->set_listen_port(selected_port);
  return absl::OkStatus();
}

std::string ProxyServer::Banner() const {
  std::ostringstream banner;
  banner << "prism-proxy listening on " << where_ << (tls_.cert_pem.empty() ? "" : " (TLS)")
         << " (config: " << config_.source << ")\n";
  for (const auto& b : supervisor_->backends()) {
    banner << "  namespace " << b->ns() << " -> " << b->plugin_name()
           << (b->launched() ? " (launched)" : "") << "\n";
  }
  banner << "  " << auth_line_ << "\n";
  const bool disabled = provider_->disabled();
  bool any = false;
  for (const auto& e : disabled ? std::vector<std::string>{} : exporters_) {
    if (e == "file") {
      banner << "  traces -> " << trace_file_ << " (prism trace ls)\n";
    } else if (e == "otlp") {
      auto ep = tracing_env_.Get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT");
      if (!ep) ep = tracing_env_.Get("OTEL_EXPORTER_OTLP_ENDPOINT");
      banner << "  traces -> OTLP " << ep.value_or("(default endpoint)") << "\n";
    } else if (e == "console") {
      banner << "  traces -> console (stderr)\n";
    } else {
      continue;
    }
    any = true;
  }
  if (!any || disabled) banner << "  traces -> nowhere (tracing off)\n";
  if (!disabled && any) {
    if (const prism::tracing::AdaptiveSampling* a = service_->tracer().adaptive()) {
      char ratio[32];
      std::snprintf(ratio, sizeof(ratio), "%g", a->options().ratio * 100);
      banner << "  sampling: adaptive - every error, every request over " << slow_default_.count()
             << " ms, " << ratio << " % of the rest (docs/sampling.md)\n";
    } else {
      auto s = tracing_env_.Get("OTEL_TRACES_SAMPLER");
      banner << "  sampling: " << s.value_or("parentbased_always_on")
             << (std::find(exporters_.begin(), exporters_.end(), "otlp") != exporters_.end() && !s
                     ? " - every request; for production set tracing.sampler: adaptive "
                       "(docs/sampling.md)"
                     : "")
             << "\n";
    }
  }
  return banner.str();
}

std::string ProxyServer::SamplingCounters() const {
  return service_ ? service_->SamplingCounters() : std::string();
}

void ProxyServer::Cleanup() {
  if (supervisor_) supervisor_->Stop();
  if (provider_) provider_->Shutdown();
  std::error_code ec;
  if (!runtime_dir_.empty()) fs::remove_all(runtime_dir_, ec);
  runtime_dir_.clear();
}

void ProxyServer::Shutdown() {
  if (shut_down_ || !server_) return;
  shut_down_ = true;
  // Subscriptions never end by themselves: end them (UNAVAILABLE to their
  // callers) rather than hold the drain for drain_timeout.
  pubsub_->CancelAll();
  // No connection is handed to the server once it shuts down (gRPC would
  // close it anyway); new ones are refused by the kernel from here on.
  if (listener_) listener_->Stop();
  server_->Shutdown(std::chrono::system_clock::now() + config_.drain_timeout);
  server_->Wait();
  LogInfo("in-flight calls drained; stopping plugins and flushing spans");
  // The proxy's spans are all ended now: export them while the plugins stop,
  // so the stop takes at most drain_timeout + max(stop_timeout, 5 s) even
  // with a collector that is down.
  bool flushed = true;
  std::thread flush([&] { flushed = provider_->Shutdown(std::chrono::seconds(5)); });
  supervisor_->Stop();
  flush.join();
  if (!flushed) LogWarn("span export did not finish within the 5 s flush bound");
  std::error_code ec;
  fs::remove_all(runtime_dir_, ec);
  runtime_dir_.clear();
  if (service_->tracer().adaptive()) LogInfo(service_->TriggerCounters());
  if (listener_ && listener_->refused() > 0) {
    LogInfo("connections: " + std::to_string(listener_->accepted()) + " accepted, " +
            std::to_string(listener_->refused()) + " refused at limits.max_connections (" +
            std::to_string(config_.limits.max_connections) + ")");
  }
}

}  // namespace prism::proxy
