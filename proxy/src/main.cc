// prism-proxy: the gateway. See proxy/README.md and docs/config.md. This
// file is flags, the configuration's overrides and signal handling; the
// running proxy is a ProxyServer (server.h).

#include <signal.h>
#include <sys/stat.h>

#include <CLI/CLI.hpp>
#include <iostream>

#include "absl/synchronization/mutex.h"
#include "config.h"
#include "log.h"
#include "plugins.h"
#include "server.h"

using namespace prism::proxy;

namespace {

constexpr int kExitFailure = 1;
constexpr int kExitUsage = 2;

int InvalidConfiguration(const absl::Status& status) {
  std::cerr << "prism-proxy: invalid configuration: " << status.message() << "\n";
  return kExitUsage;
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

  // ---- configuration: the file (or the embedded default), then the flags
  absl::StatusOr<Config> loaded = config_path.empty()
                                      ? absl::StatusOr<Config>(EmbeddedDefaultConfig(""))
                                      : LoadConfigFile(config_path);
  if (!loaded.ok()) return InvalidConfiguration(loaded.status());
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
  if (auto s = FinalizeConfig(config); !s.ok()) return InvalidConfiguration(s);
  if (auto s = CheckPluginExecutables(config); !s.ok()) return InvalidConfiguration(s);
  absl::StatusOr<TlsMaterial> tls = LoadTls(config);
  if (!tls.ok()) return InvalidConfiguration(tls.status());
  if (check_only) {
    std::cout << "prism-proxy: configuration OK (" << config.source << ", "
              << config.namespaces.size() << " namespace(s), " << config.tokens.size()
              << " token(s))\n";
    return 0;
  }

  // ---- signals: handled by sigwait here; blocked before ProxyServer starts
  // any thread, so every thread inherits the mask
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGUSR1);  // logs the sampling counters
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  ProxyServer server(std::move(config), std::move(*tls));
  if (auto s = server.Start(); !s.ok()) {
    std::cerr << "prism-proxy: " << s.message() << "\n";
    return kExitFailure;
  }
  std::cout << server.Banner() << std::flush;

  // ---- run until SIGTERM / SIGINT
  int sig = 0;
  while (sigwait(&signals, &sig) != 0 || sig == SIGUSR1) {
    if (sig == SIGUSR1) LogInfo(server.SamplingCounters());
    sig = 0;
  }
  LogInfo(std::string("received ") + (sig == SIGTERM ? "SIGTERM" : "SIGINT") +
          "; draining in-flight calls");
  server.Shutdown();
  LogInfo("stopped");
  return 0;
}
