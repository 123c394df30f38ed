#include "plugins.h"

#include <grpcpp/create_channel.h>
#include <grpcpp/security/credentials.h>
#include <grpcpp/support/byte_buffer.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <future>

#include "log.h"

extern char** environ;

namespace prism::proxy {
namespace {

using Clock = std::chrono::steady_clock;

std::string SelfDirectory() {
  char buf[4096];
  ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (n <= 0) return {};
  std::string path(buf, static_cast<size_t>(n));
  auto slash = path.rfind('/');
  return slash == std::string::npos ? std::string() : path.substr(0, slash);
}

bool IsExecutableFile(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode) && access(path.c_str(), X_OK) == 0;
}

std::string DescribeWaitStatus(int status) {
  if (WIFEXITED(status)) return "exited with status " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) {
    return std::string("was killed by signal ") + std::to_string(WTERMSIG(status)) + " (" +
           strsignal(WTERMSIG(status)) + ")";
  }
  return "stopped";
}

// Parses a health check response: field 1 (varint) == 1 (SERVING).
bool IsServing(const grpc::ByteBuffer& buffer) {
  std::vector<grpc::Slice> slices;
  if (!buffer.Dump(&slices).ok()) return false;
  std::string bytes;
  for (const auto& s : slices) bytes.append(reinterpret_cast<const char*>(s.begin()), s.size());
  // Minimal: the message is tiny; look for tag 0x08 followed by value 1.
  for (size_t i = 0; i + 1 < bytes.size(); ++i) {
    if (static_cast<uint8_t>(bytes[i]) == 0x08) return static_cast<uint8_t>(bytes[i + 1]) == 1;
  }
  return false;
}

}  // namespace

std::shared_ptr<const Endpoint> MakeEndpoint(const std::string& target) {
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
  args.SetMaxReceiveMessageSize(-1);
  args.SetMaxSendMessageSize(-1);
  // A channel of its own (not shared with other channels to the same target).
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  // No gRPC-level retries: the proxy never replays a forwarded call (a Set
  // must not run twice), and the retry filter buffers every message - 6% of
  // the proxy's instructions per call (callgrind, docs/benchmarks.md).
  args.SetInt(GRPC_ARG_ENABLE_RETRIES, 0);
  auto e = std::make_shared<Endpoint>();
  e->target = target;
  e->channel = grpc::CreateCustomChannel(target, grpc::InsecureChannelCredentials(), args);
  e->stub = std::make_unique<grpc::GenericStub>(e->channel);
  e->server = prism::grpc_tracing::ParseTarget(target);
  return e;
}

bool CheckHealth(const Endpoint& endpoint, std::chrono::milliseconds timeout) {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + timeout);
  grpc::ByteBuffer request;  // HealthCheckRequest{service: ""} is zero bytes
  grpc::Slice empty;
  request = grpc::ByteBuffer(&empty, 1);
  grpc::ByteBuffer response;
  std::promise<grpc::Status> done;
  auto fut = done.get_future();
  endpoint.stub->UnaryCall(&ctx, "/grpc.health.v1.Health/Check", grpc::StubOptions(), &request,
                           &response, [&done](grpc::Status s) { done.set_value(std::move(s)); });
  grpc::Status s = fut.get();
  return s.ok() && IsServing(response);
}

std::string FindExecutable(const std::string& name, const std::vector<std::string>& dirs) {
  if (name.find('/') != std::string::npos) return IsExecutableFile(name) ? name : std::string();
  std::vector<std::string> search = dirs;
  if (auto self = SelfDirectory(); !self.empty()) search.push_back(self);
  if (const char* path = std::getenv("PATH")) {
    std::string p = path;
    size_t start = 0;
    while (start <= p.size()) {
      size_t colon = p.find(':', start);
      if (colon == std::string::npos) colon = p.size();
      std::string d = p.substr(start, colon - start);
      search.push_back(d.empty() ? "." : d);
      start = colon + 1;
    }
  }
  for (const auto& d : search) {
    std::string candidate = d + "/" + name;
    if (IsExecutableFile(candidate)) return candidate;
  }
  return {};
}

PluginBackend::PluginBackend(NamespaceConfig config, std::string socket_path)
    : config_(std::move(config)), socket_path_(std::move(socket_path)) {
  if (config_.plugin.launched()) {
    const std::string& exe = config_.plugin.command[0];
    auto slash = exe.rfind('/');
    plugin_name_ = slash == std::string::npos ? exe : exe.substr(slash + 1);
    down_reason_ = "is starting";
  } else {
    plugin_name_ = config_.plugin.address;
  }
}

std::string PluginBackend::down_reason() const {
  std::lock_guard<std::mutex> lock(mu_);
  return down_reason_;
}

void PluginBackend::SetDownReason(std::string r) {
  std::lock_guard<std::mutex> lock(mu_);
  down_reason_ = std::move(r);
}

Supervisor::Supervisor(const Config& config, std::string runtime_dir)
    : sup_(config.supervision),
      plugin_dirs_(config.plugin_dirs),
      runtime_dir_(std::move(runtime_dir)) {
  int i = 0;
  for (const auto& ns : config.namespaces) {
    // Short socket names: sun_path holds at most 107 bytes.
    std::string sock = runtime_dir_ + "/" + std::to_string(i++) + ".sock";
    auto b = std::make_unique<PluginBackend>(ns, sock);
    by_ns_[ns.name] = b.get();
    backends_.push_back(std::move(b));
  }
}

Supervisor::~Supervisor() { Stop(); }

namespace {
// The path of a launched plugin's executable, or an error naming the
// config line of its command.
absl::StatusOr<std::string> FindPluginExecutable(const NamespaceConfig& ns,
                                                 const std::vector<std::string>& dirs) {
  const std::string& exe = ns.plugin.command[0];
  std::string path = FindExecutable(exe, dirs);
  if (!path.empty()) return path;
  std::string where = ns.plugin.command_where.empty() ? "" : ns.plugin.command_where + ": ";
  return absl::InvalidArgumentError(where + "namespaces." + ns.name + ".plugin.command: '" + exe +
                                    "' not found (looked in plugin_dirs, next to prism-proxy, "
                                    "and on PATH)");
}
}  // namespace

absl::Status CheckPluginExecutables(const Config& config) {
  for (const auto& ns : config.namespaces) {
    if (!ns.plugin.launched()) continue;
    if (auto path = FindPluginExecutable(ns, config.plugin_dirs); !path.ok()) return path.status();
  }
  return absl::OkStatus();
}

absl::Status Supervisor::Prepare() {
  for (auto& b : backends_) {
    if (!b->launched()) continue;
    auto path = FindPluginExecutable(b->config_, plugin_dirs_);
    if (!path.ok()) return path.status();
    b->executable_ = std::move(*path);
  }
  return absl::OkStatus();
}

PluginBackend* Supervisor::Find(const std::string& ns) const {
  auto it = by_ns_.find(ns);
  return it == by_ns_.end() ? nullptr : it->second;
}

void Supervisor::Start() {
  for (auto& b : backends_) {
    if (b->launched()) {
      Spawn(*b);
    } else {
      b->Publish(MakeEndpoint(b->config_.plugin.address));
      b->state_ = PluginBackend::State::kServing;
      b->next_check_ = Clock::now();
    }
  }
  thread_ = std::thread([this] { Run(); });
}

bool Supervisor::WaitUntilServing(std::chrono::milliseconds timeout) {
  auto deadline = Clock::now() + timeout;
  for (;;) {
    bool all = true;
    for (auto& b : backends_) {
      if (b->launched() && !b->endpoint()) all = false;
    }
    if (all) return true;
    if (Clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

void Supervisor::Spawn(PluginBackend& b) {
  std::vector<std::string> args;
  args.push_back(b.executable_);
  for (size_t i = 1; i < b.config_.plugin.command.size(); ++i) {
    args.push_back(b.config_.plugin.command[i]);
  }
  for (const auto& [k, v] : b.config_.plugin.settings) {
    args.push_back("--" + k);
    args.push_back(v);
  }
  args.push_back("--listen");
  args.push_back("unix://" + b.socket_path_);

  std::vector<std::string> env;
  bool has_service_name = false;
  const char* sampler = std::getenv("OTEL_TRACES_SAMPLER");
  const bool adaptive = sampler && std::string_view(sampler) == "prism_adaptive";
  for (char** e = environ; e && *e; ++e) {
    std::string kv = *e;
    if (kv.rfind("OTEL_SERVICE_NAME=", 0) == 0 && kv.size() > 18) has_service_name = true;
    // Adaptive sampling: the plugin keeps on its own what is slow by its
    // namespace's threshold (a later key wins in the argument).
    if (adaptive && b.config_.slow && kv.rfind("OTEL_TRACES_SAMPLER_ARG=", 0) == 0) {
      kv += ",slow_ms=" + std::to_string(b.config_.slow->count());
    }
    env.push_back(std::move(kv));
  }
  if (!has_service_name) env.push_back("OTEL_SERVICE_NAME=" + b.plugin_name_);

  std::vector<char*> argv, envp;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  for (auto& e : env) envp.push_back(e.data());
  envp.push_back(nullptr);

  unlink(b.socket_path_.c_str());
  pid_t parent = getpid();
  pid_t pid = fork();
  if (pid == 0) {
    // Child: only async-signal-safe calls from here.
    setpgid(0, 0);  // terminal signals go to the proxy, which stops plugins in order
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() != parent) _exit(127);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    execve(argv[0], argv.data(), envp.data());
    _exit(127);
  }
  auto now = Clock::now();
  if (pid < 0) {
    LogError("namespace '" + b.ns() + "': cannot start " + b.plugin_name_ + ": " +
             std::strerror(errno));
    b.state_ = PluginBackend::State::kBackoff;
    b.backoff_ = std::max(b.backoff_ * 2, sup_.restart_backoff_initial);
    if (b.backoff_ > sup_.restart_backoff_max) b.backoff_ = sup_.restart_backoff_max;
    b.restart_at_ = now + b.backoff_;
    return;
  }
  b.pid_ = pid;
  b.state_ = PluginBackend::State::kStarting;
  b.started_at_ = now;
  b.next_check_ = now + std::chrono::milliseconds(20);
  b.failed_checks_ = 0;
  b.pending_ = MakeEndpoint("unix://" + b.socket_path_);
  std::string cmdline;
  for (const auto& a : args) cmdline += (cmdline.empty() ? "" : " ") + a;
  LogInfo("namespace '" + b.ns() + "': started " + b.plugin_name_ + " (pid " + std::to_string(pid) +
          "): " + cmdline);
}

void Supervisor::OnExit(PluginBackend& b, int wait_status) {
  b.Publish(nullptr);
  b.pending_.reset();
  b.pid_ = -1;
  b.backoff_ = b.backoff_.count() == 0 ? sup_.restart_backoff_initial
                                       : std::min(b.backoff_ * 2, sup_.restart_backoff_max);
  b.restart_at_ = Clock::now() + b.backoff_;
  b.state_ = PluginBackend::State::kBackoff;
  ++b.restarts_;
  std::string why = DescribeWaitStatus(wait_status);
  b.SetDownReason(why + "; restarting");
  LogWarn("namespace '" + b.ns() + "': plugin " + b.plugin_name_ + " " + why + "; restarting in " +
          std::to_string(b.backoff_.count()) + " ms");
}

void Supervisor::Kill(PluginBackend& b, int sig) {
  if (b.pid_ > 0) kill(b.pid_, sig);
}

void Supervisor::Tick(PluginBackend& b, Clock::time_point now) {
  using State = PluginBackend::State;
  if (!b.launched()) {
    // External plugin: health only informs the log; calls go through regardless.
    if (now >= b.next_check_) {
      auto e = b.endpoint();
      bool ok = e && CheckHealth(*e, sup_.health_timeout);
      if (!ok && b.failed_checks_++ == 2) {
        LogWarn("namespace '" + b.ns() + "': plugin at " + b.plugin_name_ +
                " fails its health checks");
      }
      if (ok) {
        if (b.failed_checks_ >= 3) LogInfo("namespace '" + b.ns() + "': plugin is healthy again");
        b.failed_checks_ = 0;
      }
      b.next_check_ = Clock::now() + sup_.health_interval;
    }
    return;
  }
  if (b.pid_ > 0) {
    int status = 0;
    pid_t r = waitpid(b.pid_, &status, WNOHANG);
    if (r == b.pid_) {
      OnExit(b, status);
      return;
    }
  }
  switch (b.state_) {
    case State::kBackoff:
      if (now >= b.restart_at_) Spawn(b);
      break;
    case State::kStarting:
      if (now - b.started_at_ > sup_.start_timeout) {
        LogError("namespace '" + b.ns() + "': plugin " + b.plugin_name_ +
                 " did not become healthy within " + std::to_string(sup_.start_timeout.count()) +
                 " ms; killing it");
        b.SetDownReason("did not become healthy in time; restarting");
        Kill(b, SIGKILL);
        b.state_ = State::kIdle;  // reaped (and rescheduled) on the next tick
      } else if (now >= b.next_check_) {
        if (CheckHealth(*b.pending_, std::chrono::milliseconds(200))) {
          b.state_ = State::kServing;
          b.serving_since_ = Clock::now();
          b.next_check_ = b.serving_since_ + sup_.health_interval;
          b.Publish(b.pending_);
          b.SetDownReason("");
          LogInfo("namespace '" + b.ns() + "': plugin " + b.plugin_name_ +
                  " is serving on unix://" + b.socket_path_);
        } else {
          b.next_check_ = Clock::now() + std::chrono::milliseconds(25);
        }
      }
      break;
    case State::kServing:
      if (b.backoff_.count() && now - b.serving_since_ > std::chrono::seconds(10)) {
        b.backoff_ = std::chrono::milliseconds(0);  // stable again: next crash restarts fast
      }
      if (now >= b.next_check_) {
        auto e = b.endpoint();
        if (e && CheckHealth(*e, sup_.health_timeout)) {
          b.failed_checks_ = 0;
        } else if (++b.failed_checks_ >= 3) {
          LogError("namespace '" + b.ns() + "': plugin " + b.plugin_name_ +
                   " failed 3 health checks; killing it");
          b.Publish(nullptr);
          b.SetDownReason("failed its health checks; restarting");
          Kill(b, SIGKILL);
          b.state_ = State::kIdle;
        }
        b.next_check_ = Clock::now() + sup_.health_interval;
      }
      break;
    case State::kIdle:
    case State::kStopped:
      break;
  }
}

void Supervisor::Run() {
  std::unique_lock<std::mutex> lock(mu_);
  while (!stopping_) {
    lock.unlock();
    auto now = Clock::now();
    for (auto& b : backends_) Tick(*b, now);
    lock.lock();
    cv_.wait_for(lock, std::chrono::milliseconds(20), [this] { return stopping_; });
  }
}

void Supervisor::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopped_) return;
    stopping_ = stopped_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  for (auto& b : backends_) {
    b->Publish(nullptr);
    b->SetDownReason("is stopping");
    if (b->pid_ > 0) kill(b->pid_, SIGTERM);
  }
  auto deadline = Clock::now() + sup_.stop_timeout;
  for (;;) {
    bool any = false;
    for (auto& b : backends_) {
      if (b->pid_ <= 0) continue;
      int status;
      if (waitpid(b->pid_, &status, WNOHANG) == b->pid_) {
        if (!(WIFEXITED(status) && WEXITSTATUS(status) == 0)) {
          LogWarn("namespace '" + b->ns() + "': plugin " + b->plugin_name_ + " " +
                  DescribeWaitStatus(status) + " while stopping");
        }
        b->pid_ = -1;
      } else {
        any = true;
      }
    }
    if (!any) break;
    if (Clock::now() >= deadline) {
      for (auto& b : backends_) {
        if (b->pid_ <= 0) continue;
        LogWarn("namespace '" + b->ns() + "': plugin " + b->plugin_name_ +
                " did not stop in time; SIGKILL");
        kill(b->pid_, SIGKILL);
        waitpid(b->pid_, nullptr, 0);
        b->pid_ = -1;
      }
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  for (auto& b : backends_) {
    b->state_ = PluginBackend::State::kStopped;
    if (b->launched()) unlink(b->socket_path_.c_str());
  }
}

}  // namespace prism::proxy
