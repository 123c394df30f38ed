#include "prism/plugin/serve.h"

#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>
#include <pthread.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <charconv>
#include <cstdio>
#include <cstring>

#include "absl/synchronization/mutex.h"
#include "prism/grpc_tracing/semconv.h"
#include "prism/grpc_tracing/server.h"
#include "prism/plugin/log.h"
#include "prism/plugin/validation.h"
#include "prism/tracing/adaptive.h"
#include "prism/tracing/exporters/setup.h"
#include "prism/tracing/global.h"
#include "prism/v1/sampling.grpc.pb.h"

namespace prism::plugin {
namespace {

// How long a stopping plugin may spend exporting its last spans.
constexpr std::chrono::seconds kSpanFlushBound{3};

bool ParseInt(std::string_view s, int64_t& out) {
  if (s.empty()) return false;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && p == s.data() + s.size();
}

std::string Usage(const PluginDefinition& def) {
  std::string u = "usage: prism-plugin-" + def.name + " --listen ADDRESS [options]\n";
  if (!def.description.empty()) u += def.description + "\n";
  u += "\n  --listen ADDRESS            unix:///path/to.sock or HOST:PORT (required)\n"
       "  --shutdown-timeout-ms N     drain deadline after SIGTERM (default 10000)\n"
       "  --setting KEY=VALUE         any setting below, generic form\n";
  for (const auto& s : def.settings) {
    std::string flag = "  --" + s.name + " VALUE";
    if (flag.size() < 30) flag.resize(30, ' ');
    u += flag + s.help;
    if (!s.default_value.empty()) u += " (default " + s.default_value + ")";
    if (s.required) u += " (required)";
    u += "\n";
  }
  u += "\nTracing: the standard OTEL_* variables (OTEL_TRACES_EXPORTER default \"file\" to\n"
       "$PRISM_TRACE_FILE, plus \"otlp\" when OTEL_EXPORTER_OTLP_ENDPOINT is set).\n";
  return u;
}

// The socket path of a unix: listen address, else "".
std::string UnixPath(const std::string& listen) {
  if (listen.rfind("unix:", 0) != 0) return "";
  return prism::grpc_tracing::ParseTarget(listen).address;
}

absl::Status CheckListen(const std::string& listen) {
  if (listen.empty()) return absl::InvalidArgumentError("--listen is required");
  if (listen.rfind("unix:", 0) == 0) {
    const std::string path = UnixPath(listen);
    if (path.empty())
      return absl::InvalidArgumentError("--listen " + listen + ": empty socket path");
    if (path.size() > 107) {
      return absl::InvalidArgumentError("--listen " + listen +
                                        ": socket path longer than 107 bytes");
    }
    return absl::OkStatus();
  }
  if (!prism::grpc_tracing::ParseHostPort(listen)) {
    return absl::InvalidArgumentError("--listen " + listen +
                                      ": expected unix:///path or HOST:PORT");
  }
  return absl::OkStatus();
}

void RecordStartFailure(const prism::tracing::Tracer& tracer, std::string_view message) {
  auto span = tracer.StartSpan("prism.plugin.start");
  span.SetStatus(prism::tracing::StatusCode::kError, message);
  span.End();
}

}  // namespace

const std::string& Settings::Get(const std::string& name) const {
  static const std::string* empty = new std::string();
  auto it = values_.find(name);
  return it == values_.end() ? *empty : it->second;
}

absl::StatusOr<int64_t> Settings::GetInt(const std::string& name, int64_t min, int64_t max) const {
  const std::string& v = Get(name);
  int64_t out = 0;
  if (!ParseInt(v, out) || out < min || out > max) {
    return absl::InvalidArgumentError("--" + name + " '" + v + "': expected an integer in [" +
                                      std::to_string(min) + ", " + std::to_string(max) + "]");
  }
  return out;
}

absl::StatusOr<ServeOptions> ParseCommandLine(int argc, const char* const* argv,
                                              const PluginDefinition& def) {
  ServeOptions opts;
  std::map<std::string, std::string> values;
  auto declared = [&](const std::string& name) {
    for (const auto& s : def.settings) {
      if (s.name == name) return true;
    }
    return false;
  };
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i] ? argv[i] : "";
    if (arg == "--help" || arg == "-h") return absl::CancelledError(Usage(def));
    if (arg.size() < 3 || arg.rfind("--", 0) != 0) {
      return absl::InvalidArgumentError("unexpected argument '" + arg + "'");
    }
    std::string name = arg.substr(2), value;
    size_t eq = name.find('=');
    if (eq != std::string::npos) {
      value = name.substr(eq + 1);
      name.resize(eq);
    } else {
      if (i + 1 >= argc || argv[i + 1] == nullptr) {
        return absl::InvalidArgumentError("--" + name + " needs a value");
      }
      value = argv[++i];
    }
    if (name == "listen") {
      opts.listen = value;
    } else if (name == "shutdown-timeout-ms") {
      if (!ParseInt(value, opts.shutdown_timeout_ms) || opts.shutdown_timeout_ms < 0 ||
          opts.shutdown_timeout_ms > 3600 * 1000) {
        return absl::InvalidArgumentError("--shutdown-timeout-ms '" + value +
                                          "': expected milliseconds in [0, 3600000]");
      }
    } else if (name == "setting") {
      size_t e = value.find('=');
      if (e == std::string::npos || e == 0) {
        return absl::InvalidArgumentError("--setting '" + value + "': expected KEY=VALUE");
      }
      std::string key = value.substr(0, e);
      if (!declared(key)) return absl::InvalidArgumentError("unknown setting '" + key + "'");
      values[key] = value.substr(e + 1);
    } else if (declared(name)) {
      values[name] = value;
    } else {
      std::string known = "--listen, --shutdown-timeout-ms, --setting";
      for (const auto& s : def.settings) known += ", --" + s.name;
      return absl::InvalidArgumentError("unknown flag --" + name + " (known: " + known + ")");
    }
  }
  if (auto st = CheckListen(opts.listen); !st.ok()) return st;
  for (const auto& s : def.settings) {
    if (values.count(s.name)) continue;
    if (s.required) return absl::InvalidArgumentError("--" + s.name + " is required");
    values[s.name] = s.default_value;
  }
  opts.settings = Settings(std::move(values));
  return opts;
}

namespace {

// prism.v1.Sampling/Keep: the proxy keeps a trace this plugin left
// undecided (docs/sampling.md). Without adaptive sampling it accepts
// nothing: every span was already exported or dropped by the head sampler.
class SamplingService final : public prism::v1::Sampling::Service {
 public:
  explicit SamplingService(prism::tracing::AdaptiveSampling* adaptive) : adaptive_(adaptive) {}

  grpc::Status Keep(grpc::ServerContext*, const prism::v1::KeepRequest* req,
                    prism::v1::KeepResponse* resp) override {
    constexpr int kMaxTraces = 1000;
    if (req->traces_size() > kMaxTraces) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                          "at most " + std::to_string(kMaxTraces) + " traces per Keep call");
    }
    for (const auto& t : req->traces()) {
      if (t.trace_id().size() != prism::tracing::TraceId::kSize) {
        return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "trace_id must be 16 bytes");
      }
      if (t.trace_id().find_first_not_of('\0') == std::string::npos) {
        return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                            "trace_id must not be all zero (an invalid trace id)");
      }
      auto reason = prism::tracing::ParseSamplingReason(t.reason());
      if (!reason) {
        return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                            "reason must be error, slow, ratio or parent");
      }
    }
    if (!adaptive_) return grpc::Status::OK;
    for (const auto& t : req->traces()) {
      std::array<uint8_t, prism::tracing::TraceId::kSize> bytes;
      std::memcpy(bytes.data(), t.trace_id().data(), bytes.size());
      adaptive_->Keep(prism::tracing::TraceId(bytes),
                      *prism::tracing::ParseSamplingReason(t.reason()));
    }
    resp->set_accepted(static_cast<uint32_t>(req->traces_size()));
    return grpc::Status::OK;
  }

 private:
  prism::tracing::AdaptiveSampling* adaptive_;
};

void LogSamplingCounters(const prism::tracing::AdaptiveSampling* adaptive) {
  Log(LogLevel::kInfo, adaptive ? "adaptive sampling: " + adaptive->Counters().ToString()
                                : std::string("adaptive sampling is off (OTEL_TRACES_SAMPLER)"));
}

}  // namespace

int Serve(int argc, char** argv, PluginDefinition def) {
  // Debian's abseil keeps mutex deadlock detection on, which grpc's mutexes
  // pay for on every lock; plugins are on the request path, so turn it off.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  // Databases, trace file and socket are for this user only, whatever mode a
  // library asks for (SQLite creates its files 0644); docs/config.md.
  umask(077);
  const std::string service_name = "prism-plugin-" + def.name;
  SetLogName(service_name);
  absl::StatusOr<ServeOptions> opts = ParseCommandLine(argc, argv, def);
  if (!opts.ok()) {
    if (opts.status().code() == absl::StatusCode::kCancelled) {
      std::fputs(std::string(opts.status().message()).c_str(), stdout);
      return kExitOk;
    }
    std::fprintf(stderr, "%s: %s (see --help)\n", service_name.c_str(),
                 std::string(opts.status().message()).c_str());
    return kExitUsage;
  }

  // Block the stop signals in every thread (threads started from here on
  // inherit the mask); this thread takes them with sigwait.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGUSR1);  // logs the sampling counters
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  prism::tracing::ExporterDefaults defaults;
  defaults.traces_exporter = "file";
  defaults.add_otlp_when_endpoint_set = true;
  // A plugin is behind the proxy: with OTEL_TRACES_SAMPLER=prism_adaptive it
  // waits for the proxy's verdict on the traces the proxy left undecided.
  defaults.adaptive_role = prism::tracing::AdaptiveOptions::Role::kDownstream;
  std::shared_ptr<prism::tracing::TracerProvider> provider =
      prism::tracing::InitTracingFromEnvironment(service_name, defaults);
  prism::tracing::SetGlobalPropagator(prism::tracing::PropagatorFromEnvironment());

  PluginEnv env;
  env.plugin_name = def.name;
  env.service_name = service_name;
  env.settings = opts->settings;
  env.tracer = provider->GetTracer("prism.plugin." + def.name);

  auto fail = [&](const std::string& message) {
    Log(LogLevel::kError, message);
    RecordStartFailure(env.tracer, message);
    provider->Shutdown(std::chrono::seconds(5));
    return kExitStartFailed;
  };

  if (!def.make_service) return fail("plugin definition has no make_service");
  absl::StatusOr<std::unique_ptr<grpc::Service>> service = def.make_service(env);
  if (!service.ok()) return fail(std::string(service.status().message()));
  if (*service == nullptr) return fail("make_service returned no service");

  const std::string unix_path = UnixPath(opts->listen);
  prism::grpc_tracing::ServerTracingOptions tracing_options;
  if (!unix_path.empty()) {
    // A socket left behind by a crashed predecessor would make bind fail.
    struct stat st;
    if (lstat(unix_path.c_str(), &st) == 0 && S_ISSOCK(st.st_mode)) unlink(unix_path.c_str());
    tracing_options.server_address = unix_path;
  } else {
    auto ep = prism::grpc_tracing::ParseTarget(opts->listen);
    tracing_options.server_address = ep.address;
    tracing_options.server_port = ep.port;
  }
  tracing_options.tracer = provider->GetTracer(prism::grpc_tracing::kInstrumentationName);
  tracing_options.excluded_method_prefixes.push_back("/prism.v1.Sampling/");
  SamplingService sampling(tracing_options.tracer->adaptive());

  grpc::EnableDefaultHealthCheckService(true);
  prism::grpc_tracing::InstallSyncHandlerScopes();
  grpc::ServerBuilder builder;
  int bound_port = 0;
  builder.AddListeningPort(opts->listen, grpc::InsecureServerCredentials(),
                           unix_path.empty() ? &bound_port : nullptr);
  builder.RegisterService(service->get());
  builder.RegisterService(&sampling);
  builder.SetMaxReceiveMessageSize(kMaxMessageBytes);
  builder.SetMaxSendMessageSize(kMaxMessageBytes);
  std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>> interceptors;
  int configured_port = tracing_options.server_port;
  interceptors.push_back(prism::grpc_tracing::MakeServerInterceptorFactory(tracing_options));
  builder.experimental().SetInterceptorCreators(std::move(interceptors));
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (!server || (unix_path.empty() && bound_port == 0)) {
    return fail("cannot listen on " + opts->listen);
  }
  std::string serving = opts->listen;
  if (unix_path.empty() && configured_port == 0) {
    serving = opts->listen.substr(0, opts->listen.rfind(':') + 1) + std::to_string(bound_port);
  }
  Log(LogLevel::kInfo, "serving on " + serving);

  int sig = 0;
  while (sigwait(&stop_signals, &sig) != 0 || sig == SIGUSR1) {
    if (sig == SIGUSR1) LogSamplingCounters(tracing_options.tracer->adaptive());
    sig = 0;
  }
  Log(LogLevel::kInfo, std::string("received ") + (sig == SIGINT ? "SIGINT" : "SIGTERM") +
                           "; draining in-flight calls (up to " +
                           std::to_string(opts->shutdown_timeout_ms) + " ms)");
  auto started = std::chrono::steady_clock::now();
  if (def.on_stopping) def.on_stopping();
  server->Shutdown(std::chrono::system_clock::now() +
                   std::chrono::milliseconds(opts->shutdown_timeout_ms));
  server->Wait();
  server.reset();
  if (def.on_stopped) def.on_stopped();
  service->reset();
  if (!unix_path.empty()) unlink(unix_path.c_str());
  auto drained_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                        std::chrono::steady_clock::now() - started)
                        .count();
  // One bound for the whole flush, inside the proxy's default 5 s between
  // SIGTERM and SIGKILL: a collector that is down must not cost a plugin
  // launched by the proxy the spans it wrote to the local trace file (the
  // exporters are flushed at once, each within this bound).
  bool flushed = provider->Shutdown(kSpanFlushBound);
  Log(LogLevel::kInfo, "stopped (drained in " + std::to_string(drained_ms) + " ms" +
                           (flushed ? "" : ", some spans not flushed") + ")");
  return kExitOk;
}

}  // namespace prism::plugin
