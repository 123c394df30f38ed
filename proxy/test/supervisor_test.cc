// The Supervisor with its parts replaced: a fake launcher (no processes), a
// fake or real health checker, a fake clock. And the real health checker
// against a plugin that hangs: it must not delay another plugin's check.
#include <grpcpp/generic/async_generic_service.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>

#include <atomic>
#include <filesystem>
#include <map>
#include <mutex>

#include "endpoint.h"
#include "plugins.h"
#include "server.h"

namespace prism::proxy {
namespace {

using namespace std::chrono_literals;

std::string TempDir() {
  char tmpl[] = "/tmp/prism-sup-XXXXXX";
  return mkdtemp(tmpl);
}

// The value after `flag` in argv ("" when absent).
std::string Arg(const LaunchSpec& spec, const std::string& flag) {
  for (size_t i = 0; i + 1 < spec.argv.size(); ++i) {
    if (spec.argv[i] == flag) return spec.argv[i + 1];
  }
  return {};
}

bool HasEnv(const LaunchSpec& spec, const std::string& kv) {
  return std::find(spec.envp.begin(), spec.envp.end(), kv) != spec.envp.end();
}

// Processes that exist only in its tables; SIGTERM/SIGKILL end them.
class FakeLauncher : public ProcessLauncher {
 public:
  absl::StatusOr<pid_t> Launch(const LaunchSpec& spec) override {
    std::lock_guard<std::mutex> lock(mu);
    launches.push_back(spec);
    if (fail_next) {
      fail_next = false;
      return absl::UnavailableError("fork: Resource temporarily unavailable");
    }
    pid_t pid = next_pid++;
    running[pid] = std::nullopt;
    if (on_launch) on_launch(pid, spec);
    return pid;
  }
  void Signal(pid_t pid, int sig) override {
    std::lock_guard<std::mutex> lock(mu);
    signals.emplace_back(pid, sig);
    if (sig == SIGTERM || sig == SIGKILL) EndLocked(pid, sig /* killed by sig */);
  }
  std::optional<int> Reap(pid_t pid, bool) override {
    std::lock_guard<std::mutex> lock(mu);
    auto it = running.find(pid);
    if (it == running.end() || !it->second) return std::nullopt;
    int status = *it->second;
    running.erase(it);
    return status;
  }
  void Exit(pid_t pid, int code) {
    std::lock_guard<std::mutex> lock(mu);
    EndLocked(pid, code << 8);
  }
  size_t launch_count() {
    std::lock_guard<std::mutex> lock(mu);
    return launches.size();
  }

  std::mutex mu;
  std::vector<LaunchSpec> launches;
  std::map<pid_t, std::optional<int>> running;  // wait status once ended
  std::vector<std::pair<pid_t, int>> signals;
  std::function<void(pid_t, const LaunchSpec&)> on_launch;
  std::function<void(pid_t)> on_end;
  bool fail_next = false;
  pid_t next_pid = 1000;

 private:
  void EndLocked(pid_t pid, int status) {
    auto it = running.find(pid);
    if (it == running.end() || it->second) return;
    it->second = status;
    if (on_end) on_end(pid);
  }
};

// Health checks the test answers itself.
class FakeHealth : public HealthChecker {
 public:
  struct Pending {
    std::string target;
    std::chrono::milliseconds timeout;
    std::function<void(bool)> done;
  };
  void Check(std::shared_ptr<const Endpoint> endpoint, std::chrono::milliseconds timeout,
             std::function<void(bool)> done) override {
    pending.push_back({endpoint->target, timeout, std::move(done)});
  }
  // Answers every pending check of `target`; how many there were.
  int Answer(const std::string& target, bool serving) {
    int n = 0;
    for (auto it = pending.begin(); it != pending.end();) {
      if (it->target == target) {
        it->done(serving);
        it = pending.erase(it);
        ++n;
      } else {
        ++it;
      }
    }
    return n;
  }
  std::vector<Pending> pending;
};

NamespaceConfig Launched(const std::string& name, const std::string& role) {
  NamespaceConfig ns;
  ns.name = name;
  ns.plugin.command = {"/usr/bin/prism-plugin-fake"};
  ns.plugin.settings["fake"] = role;
  return ns;
}

// The auth span's blocks: one per (right, principal), in the order the
// span would get them one by one, bounded at kMaxAuthBlocks.
TEST(PluginBackend, AuthAttributesAreOneBlockPerRightAndPrincipalUpToABound) {
  PluginBackend b(Launched("ns1", "good"), "/run/fake/0.sock");
  auto keys = [](const prism::tracing::SharedAttributes& block) {
    std::string out;
    for (const auto& kv : block->attributes()) {
      out += std::string(kv.key.view()) + "=" + std::get<std::string>(kv.value) + ";";
    }
    return out;
  };
  const auto* reader = b.auth_attributes(kRead, 0, "reader");
  ASSERT_NE(reader, nullptr);
  EXPECT_EQ(keys(*reader), "prism.namespace=ns1;prism.access=read;prism.principal=reader;");
  EXPECT_EQ(b.auth_attributes(kRead, 0, "reader"), reader);  // made once
  const auto* anonymous = b.auth_attributes(kRead, -1, "anonymous");
  ASSERT_NE(anonymous, nullptr);
  EXPECT_NE(anonymous, reader);
  EXPECT_EQ(keys(*anonymous), "prism.namespace=ns1;prism.access=read;prism.principal=anonymous;");
  const auto* nobody = b.auth_attributes(kWrite, -1, std::nullopt);  // authentication failed
  ASSERT_NE(nobody, nullptr);
  EXPECT_EQ(keys(*nobody), "prism.namespace=ns1;prism.access=write;");
  EXPECT_NE(b.auth_attributes(kWrite, 0, "reader"), reader);  // another right
  // 4 made; fill up to the bound, then none: callers fall back to one by one.
  int made = 4;
  for (int i = 1; made < static_cast<int>(PluginBackend::kMaxAuthBlocks); ++i, ++made) {
    ASSERT_NE(b.auth_attributes(kRead, i, "t"), nullptr) << i;
  }
  EXPECT_EQ(b.auth_attributes(kRead, 100000, "late"), nullptr);
  EXPECT_EQ(b.auth_attributes(kRead, 0, "reader"), reader);  // those made stay
}

TEST(Supervisor, LaunchesChecksPublishesAndRestartsInSimulatedTime) {
  Config config;
  config.namespaces = {Launched("a", "good"), Launched("b", "good")};
  config.namespaces[1].slow = 250ms;
  config.supervision.restart_backoff_initial = 200ms;
  config.supervision.stop_timeout = 1000ms;
  auto launcher = std::make_shared<FakeLauncher>();
  auto health = std::make_shared<FakeHealth>();
  SteadyTime now{};
  Supervisor::Options o;
  o.runtime_dir = "/run/fake";
  o.inherited = {"PATH=/bin", "OTEL_SERVICE_NAME="};
  o.tracing.defaults["OTEL_TRACES_SAMPLER"] = "prism_adaptive";
  o.tracing.defaults["OTEL_TRACES_SAMPLER_ARG"] = "ratio=0.01";
  o.launcher = launcher;
  o.health = health;
  o.now = [&now] { return now; };
  Supervisor sup(config, std::move(o));

  sup.Poll();
  ASSERT_EQ(launcher->launches.size(), 2u);
  const LaunchSpec& a = launcher->launches[0];
  EXPECT_EQ(a.argv[0], "/usr/bin/prism-plugin-fake");
  EXPECT_EQ(Arg(a, "--fake"), "good");
  EXPECT_EQ(Arg(a, "--listen"), "unix:///run/fake/0.sock");
  EXPECT_TRUE(HasEnv(a, "PATH=/bin"));
  EXPECT_TRUE(HasEnv(a, "OTEL_SERVICE_NAME=prism-plugin-fake"));  // empty counts as unset
  EXPECT_TRUE(HasEnv(a, "OTEL_TRACES_SAMPLER_ARG=ratio=0.01"));
  EXPECT_TRUE(HasEnv(launcher->launches[1], "OTEL_TRACES_SAMPLER_ARG=ratio=0.01,slow_ms=250"));
  EXPECT_EQ(sup.Find("a")->endpoint(), nullptr);

  now += 20ms;
  sup.Poll();
  ASSERT_EQ(health->pending.size(), 2u);
  EXPECT_EQ(health->Answer("unix:///run/fake/0.sock", true), 1);
  sup.Poll();
  ASSERT_NE(sup.Find("a")->endpoint(), nullptr) << "a answered SERVING";
  EXPECT_EQ(sup.Find("a")->down_reason(), "");
  EXPECT_EQ(sup.Find("b")->endpoint(), nullptr) << "b has not answered";

  // a crashes: withdrawn at once, relaunched after the initial backoff.
  launcher->Exit(1000, 1);
  now += 1ms;
  sup.Poll();
  EXPECT_EQ(sup.Find("a")->endpoint(), nullptr);
  EXPECT_EQ(sup.Find("a")->down_reason(), "exited with status 1; restarting");
  now += 199ms;
  sup.Poll();
  EXPECT_EQ(launcher->launch_count(), 2u);
  now += 1ms;
  sup.Poll();
  ASSERT_EQ(launcher->launch_count(), 3u);
  EXPECT_EQ(Arg(launcher->launches[2], "--listen"), "unix:///run/fake/0.sock");

  // A launch that fails is retried after the next backoff (400 ms).
  launcher->Exit(1002, 0);
  launcher->fail_next = true;
  now += 1ms;
  sup.Poll();  // exit seen; backoff 400 ms
  now += 400ms;
  sup.Poll();  // relaunch fails
  EXPECT_EQ(launcher->launch_count(), 4u);
  EXPECT_NE(sup.Find("a")->down_reason().find("cannot be started"), std::string::npos);

  sup.Stop();
  // b (pid 1001) is still running: SIGTERM.
  EXPECT_NE(std::find(launcher->signals.begin(), launcher->signals.end(),
                      std::make_pair(pid_t{1001}, SIGTERM)),
            launcher->signals.end());
  EXPECT_EQ(sup.Find("b")->down_reason(), "is stopping");
}

TEST(Supervisor, GivesUpOnAPluginThatKeepsCrashing) {
  Config config;
  config.namespaces = {Launched("a", "good")};
  config.supervision.restart_backoff_initial = 10ms;
  config.supervision.max_restarts = 2;
  config.supervision.restart_window = 10000ms;
  auto launcher = std::make_shared<FakeLauncher>();
  SteadyTime now{};
  Supervisor::Options o;
  o.launcher = launcher;
  o.health = std::make_shared<FakeHealth>();
  o.now = [&now] { return now; };
  Supervisor sup(config, std::move(o));
  for (int i = 0; i < 20; ++i) {
    sup.Poll();
    for (auto& [pid, status] : launcher->running) {
      if (!status) launcher->Exit(pid, 3);
    }
    now += 100ms;
  }
  EXPECT_EQ(launcher->launch_count(), 3u) << "the first launch and max_restarts restarts";
  EXPECT_NE(sup.Find("a")->down_reason().find("not restarted: 3 failures"), std::string::npos)
      << sup.Find("a")->down_reason();
}

// A plugin's gRPC server in this process: answers grpc.health.v1 SERVING,
// or, once `hang` is set, never answers (until the caller gives up).
class FakePluginServer {
 public:
  explicit FakePluginServer(const std::string& target) {
    grpc::ServerBuilder b;
    b.AddListeningPort(target, grpc::InsecureServerCredentials());
    b.RegisterCallbackGenericService(&service_);
    server_ = b.BuildAndStart();
  }
  ~FakePluginServer() { server_->Shutdown(std::chrono::system_clock::now() + 100ms); }
  bool ok() const { return server_ != nullptr; }

  std::atomic<bool> hang{false};
  std::atomic<int> checks{0};

 private:
  class Reactor : public grpc::ServerGenericBidiReactor {
   public:
    explicit Reactor(FakePluginServer* s) : s_(s) { StartRead(&request_); }
    void OnReadDone(bool ok) override {
      if (!ok) return Done(grpc::Status::OK);
      ++s_->checks;
      if (s_->hang) return;  // until the client's deadline cancels the call
      grpc::Slice serving(std::string("\x08\x01", 2));
      response_ = grpc::ByteBuffer(&serving, 1);
      if (!finished_.exchange(true)) {
        StartWriteAndFinish(&response_, grpc::WriteOptions(), grpc::Status::OK);
      }
    }
    void OnCancel() override { Done(grpc::Status(grpc::CANCELLED, "cancelled")); }
    void OnDone() override { delete this; }

   private:
    void Done(const grpc::Status& s) {
      if (!finished_.exchange(true)) Finish(s);
    }
    FakePluginServer* s_;
    grpc::ByteBuffer request_, response_;
    std::atomic<bool> finished_{false};
  };
  class Service : public grpc::CallbackGenericService {
   public:
    explicit Service(FakePluginServer* s) : s_(s) {}
    grpc::ServerGenericBidiReactor* CreateReactor(grpc::GenericCallbackServerContext*) override {
      return new Reactor(s_);
    }
    FakePluginServer* s_;
  };
  Service service_{this};
  std::unique_ptr<grpc::Server> server_;
};

TEST(GrpcHealthChecker, AHangingPluginDoesNotDelayAnotherAndEndsAtItsDeadline) {
  std::string dir = TempDir();
  FakePluginServer good("unix://" + dir + "/good.sock"), stuck("unix://" + dir + "/stuck.sock");
  ASSERT_TRUE(good.ok() && stuck.ok());
  stuck.hang = true;
  GrpcHealthChecker checker;
  struct Result {
    std::mutex mu;
    std::condition_variable cv;
    std::optional<bool> serving;
    std::chrono::steady_clock::time_point at;
  } g, s;
  auto record = [](Result& r) {
    return [&r](bool serving) {
      std::lock_guard<std::mutex> lock(r.mu);
      r.serving = serving;
      r.at = std::chrono::steady_clock::now();
      r.cv.notify_all();
    };
  };
  auto wait = [](Result& r) {
    std::unique_lock<std::mutex> lock(r.mu);
    return r.cv.wait_for(lock, 5s, [&] { return r.serving.has_value(); });
  };
  const auto start = std::chrono::steady_clock::now();
  // The stuck plugin first: a checker that waited for it would delay the other.
  checker.Check(MakeEndpoint("unix://" + dir + "/stuck.sock"), 150ms, record(s));
  checker.Check(MakeEndpoint("unix://" + dir + "/good.sock"), 150ms, record(g));
  ASSERT_TRUE(wait(g));
  ASSERT_TRUE(wait(s));
  EXPECT_TRUE(*g.serving);
  EXPECT_FALSE(*s.serving);
  EXPECT_LT(g.at - start, 120ms) << "the healthy plugin's answer waited for the stuck one";
  EXPECT_GE(s.at - start, 140ms) << "the stuck check ended before its deadline";
  EXPECT_LT(s.at - start, 1000ms) << "the stuck check outlived its deadline";
  EXPECT_EQ(stuck.checks.load(), 1);
  std::filesystem::remove_all(dir);
}

TEST(Supervisor, AStuckPluginDoesNotDelayTheSupervisionOfAnotherNamespace) {
  std::string dir = TempDir();
  Config config;
  config.namespaces = {Launched("good", "good"), Launched("stuck", "stuck")};
  config.supervision.health_interval = 20ms;
  // Long enough that one stuck check, waited for in turn, would stall
  // everything for the whole observation below.
  config.supervision.health_timeout = 3000ms;
  config.supervision.restart_backoff_initial = 10ms;
  auto launcher = std::make_shared<FakeLauncher>();
  std::mutex mu;
  std::map<pid_t, std::unique_ptr<FakePluginServer>> servers;
  launcher->on_launch = [&](pid_t pid, const LaunchSpec& spec) {
    std::lock_guard<std::mutex> lock(mu);
    servers[pid] = std::make_unique<FakePluginServer>(Arg(spec, "--listen"));
  };
  auto server = [&](pid_t pid) {
    std::lock_guard<std::mutex> lock(mu);
    return servers.count(pid) ? servers[pid].get() : nullptr;
  };
  Supervisor::Options o;
  o.runtime_dir = dir;
  o.launcher = launcher;  // real health checks, real clock
  Supervisor sup(config, std::move(o));
  sup.Start();
  ASSERT_TRUE(sup.WaitUntilServing(3000ms));
  FakePluginServer* good = server(1000);
  FakePluginServer* stuck = server(1001);
  ASSERT_TRUE(good && stuck);

  stuck->hang = true;
  std::this_thread::sleep_for(50ms);  // a check of the stuck plugin is now out
  const int before = good->checks.load();
  std::this_thread::sleep_for(200ms);
  const int during = good->checks.load() - before;
  // ~10 at one per 20 ms; waiting for the stuck check (3 s) would allow at most 1.
  EXPECT_GE(during, 5) << "the good plugin's checks waited for the stuck plugin's";
  EXPECT_NE(sup.Find("good")->endpoint(), nullptr);
  EXPECT_NE(sup.Find("stuck")->endpoint(), nullptr) << "no verdict before its deadline";

  // A crash of the good plugin is handled (relaunched, serving) meanwhile.
  const auto crash = std::chrono::steady_clock::now();
  launcher->Exit(1000, 1);
  while (launcher->launch_count() < 3 && std::chrono::steady_clock::now() - crash < 2s) {
    std::this_thread::sleep_for(5ms);
  }
  EXPECT_EQ(launcher->launch_count(), 3u);
  EXPECT_TRUE(sup.WaitUntilServing(2000ms));
  EXPECT_LT(std::chrono::steady_clock::now() - crash, 1000ms);
  sup.Stop();
  {
    std::lock_guard<std::mutex> lock(mu);
    servers.clear();
  }
  std::filesystem::remove_all(dir);
}

// The whole proxy in this process, its plugin a fake: the configuration
// reaches the SDK and the plugin's environment, and the proxy's own
// environment is left as it was (no setenv).
TEST(ProxyServer, ConfiguresTracingAndThePluginWithoutTouchingItsEnvironment) {
  for (const char* v :
       {"OTEL_TRACES_SAMPLER", "OTEL_TRACES_EXPORTER", "PRISM_TRACE_FILE",
        "OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT", "OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT"}) {
    unsetenv(v);
  }
  std::string dir = TempDir();
  Config config;
  config.source = "test";
  config.listen = "127.0.0.1:0";
  config.data_dir = dir;
  config.auth_mode = AuthMode::kNone;
  config.namespaces = {Launched("default", "good")};
  config.namespaces[0].plugin.command = {"/bin/true"};  // found by Prepare; never run
  config.tracing.sampler = "always_on";
  config.tracing.exporters = "none";
  auto launcher = std::make_shared<FakeLauncher>();
  std::mutex mu;
  std::vector<std::unique_ptr<FakePluginServer>> servers;
  launcher->on_launch = [&](pid_t, const LaunchSpec& spec) {
    std::lock_guard<std::mutex> lock(mu);
    servers.push_back(std::make_unique<FakePluginServer>(Arg(spec, "--listen")));
  };
  ProxyServer::Options o;
  o.launcher = launcher;
  o.inherited = std::vector<std::string>{"HOME=/nowhere"};
  {
    ProxyServer server(config, TlsMaterial{}, o);
    ASSERT_TRUE(server.Start().ok());
    std::string banner = server.Banner();
    EXPECT_NE(banner.find("namespace default -> true (launched)"), std::string::npos) << banner;
    EXPECT_NE(banner.find("traces -> nowhere"), std::string::npos) << banner;
    ASSERT_EQ(launcher->launch_count(), 1u);
    const LaunchSpec& spec = launcher->launches[0];
    EXPECT_TRUE(HasEnv(spec, "HOME=/nowhere"));
    EXPECT_TRUE(HasEnv(spec, "PRISM_TRACE_FILE=" + dir + "/traces.jsonl"));
    EXPECT_TRUE(HasEnv(spec, "OTEL_TRACES_SAMPLER=always_on"));
    EXPECT_TRUE(HasEnv(spec, "OTEL_TRACES_EXPORTER=none"));
    EXPECT_TRUE(HasEnv(spec, "OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT=4096"));
    EXPECT_TRUE(HasEnv(spec, "OTEL_SERVICE_NAME=true"));
    for (const char* v : {"OTEL_TRACES_SAMPLER", "OTEL_TRACES_EXPORTER", "PRISM_TRACE_FILE",
                          "OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT"}) {
      EXPECT_EQ(getenv(v), nullptr) << v << " was set in the proxy's environment";
    }
    EXPECT_NE(server.config().namespaces.size(), 0u);
    server.Shutdown();
  }
  {
    std::lock_guard<std::mutex> lock(mu);
    servers.clear();
  }
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace prism::proxy
