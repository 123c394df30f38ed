#include "plugins.h"

#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "auth.h"  // RightsName
#include "log.h"

namespace prism::proxy {
namespace {

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

std::string Millis(std::chrono::milliseconds d) { return std::to_string(d.count()) + " ms"; }

}  // namespace

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
    state_.launched = false;
  }
  route_attributes_ = prism::tracing::AttributeBlock::Make(
      {{"prism.namespace", config_.name}, {"prism.plugin", plugin_name_}});
}

const prism::tracing::SharedAttributes* PluginBackend::auth_attributes(
    uint8_t right, int principal_index, std::optional<std::string_view> principal) const {
  const uint64_t key = (static_cast<uint64_t>(principal ? principal_index + 2 : 0) << 8) | right;
  std::lock_guard<std::mutex> lock(auth_mu_);
  auto it = auth_blocks_.find(key);
  if (it != auth_blocks_.end()) return &it->second;
  if (auth_blocks_.size() >= kMaxAuthBlocks) return nullptr;
  prism::tracing::Attributes a;
  prism::tracing::AppendString(a, "prism.namespace", config_.name);
  prism::tracing::AppendString(a, "prism.access", RightsName(right));
  if (principal) prism::tracing::AppendString(a, "prism.principal", *principal);
  return &auth_blocks_.emplace(key, prism::tracing::AttributeBlock::Make(std::move(a)))
              .first->second;
}

std::string PluginBackend::down_reason() const {
  std::lock_guard<std::mutex> lock(mu_);
  return down_reason_;
}

void PluginBackend::SetDownReason(std::string r) {
  std::lock_guard<std::mutex> lock(mu_);
  down_reason_ = std::move(r);
}

Supervisor::Supervisor(const Config& config, Options options)
    : sup_(config.supervision),
      policy_{config.supervision},
      plugin_dirs_(config.plugin_dirs),
      options_(std::move(options)) {
  if (!options_.launcher) options_.launcher = std::make_shared<PosixLauncher>();
  if (!options_.health) options_.health = std::make_shared<GrpcHealthChecker>();
  if (!options_.now) options_.now = [] { return std::chrono::steady_clock::now(); };
  int i = 0;
  for (const auto& ns : config.namespaces) {
    // Short socket names: sun_path holds at most 107 bytes.
    std::string sock = options_.runtime_dir + "/" + std::to_string(i++) + ".sock";
    auto b = std::make_unique<PluginBackend>(ns, sock);
    b->index_ = backends_.size();
    if (!b->launched()) b->pending_ = MakeEndpoint(ns.plugin.address);
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
  thread_ = std::thread([this] { Run(); });
}

bool Supervisor::WaitUntilServing(std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    bool all = true;
    for (auto& b : backends_) {
      if (b->launched() && !b->endpoint()) all = false;
    }
    if (all) return true;
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

bool Supervisor::Spawn(PluginBackend& b) {
  LaunchSpec spec;
  spec.argv.push_back(b.executable_.empty() ? b.config_.plugin.command[0] : b.executable_);
  for (size_t i = 1; i < b.config_.plugin.command.size(); ++i) {
    spec.argv.push_back(b.config_.plugin.command[i]);
  }
  for (const auto& [k, v] : b.config_.plugin.settings) {
    spec.argv.push_back("--" + k);
    spec.argv.push_back(v);
  }
  spec.argv.push_back("--listen");
  spec.argv.push_back("unix://" + b.socket_path_);
  spec.envp =
      PluginEnvironment(options_.inherited, options_.tracing, b.plugin_name_, b.config_.slow);

  unlink(b.socket_path_.c_str());
  absl::StatusOr<pid_t> pid = options_.launcher->Launch(spec);
  if (!pid.ok()) {
    b.last_failure_ = std::string(pid.status().message());
    return false;
  }
  b.pid_ = *pid;
  b.pending_ = MakeEndpoint("unix://" + b.socket_path_);
  std::string cmdline;
  for (const auto& a : spec.argv) cmdline += (cmdline.empty() ? "" : " ") + a;
  LogInfo("namespace '" + b.ns() + "': started " + b.plugin_name_ + " (pid " +
          std::to_string(b.pid_) + "): " + cmdline);
  return true;
}

void Supervisor::StartCheck(size_t index, std::chrono::milliseconds timeout) {
  PluginBackend& b = *backends_[index];
  const uint64_t generation = b.state_.generation;
  std::weak_ptr<Inbox> inbox = inbox_;
  auto done = [inbox, index, generation](bool serving) {
    auto in = inbox.lock();
    if (!in) return;
    {
      std::lock_guard<std::mutex> lock(in->mu);
      in->results.push_back({index, generation, serving});
    }
    in->cv.notify_all();
  };
  if (!b.pending_) {
    done(false);
    return;
  }
  options_.health->Check(b.pending_, timeout, std::move(done));
}

void Supervisor::Report(PluginBackend& b, Note note) {
  const std::string who = "namespace '" + b.ns() + "': plugin " + b.plugin_name_;
  switch (note) {
    case Note::kNone:
      break;
    case Note::kServing:
      b.SetDownReason("");
      LogInfo(who + " is serving on unix://" + b.socket_path_);
      break;
    case Note::kStartTimeout:
      b.SetDownReason("did not become healthy in time; restarting");
      LogError(who + " did not become healthy within " + Millis(sup_.start_timeout) +
               "; killing it");
      break;
    case Note::kHealthKill:
      b.SetDownReason("failed its health checks; restarting");
      LogError(who + " failed " + std::to_string(policy_.failed_checks_to_restart) +
               " health checks; killing it");
      break;
    case Note::kExited:
      b.SetDownReason(b.last_failure_ + "; restarting");
      LogWarn(who + " " + b.last_failure_ + "; restarting in " + Millis(b.state_.backoff));
      break;
    case Note::kLaunchFailed:
      b.SetDownReason("cannot be started (" + b.last_failure_ + "); restarting");
      LogError(who + " cannot be started: " + b.last_failure_ + "; retrying in " +
               Millis(b.state_.backoff));
      break;
    case Note::kGaveUp: {
      std::string why = b.last_failure_ +
                        "; not restarted: " + std::to_string(b.state_.recent_failures.size()) +
                        " failures within " + Millis(sup_.restart_window) +
                        " (supervision.max_restarts " + std::to_string(sup_.max_restarts) + ")";
      b.SetDownReason(why);
      LogError(who + " " + why);
      break;
    }
    case Note::kExternalUnhealthy:
      LogWarn("namespace '" + b.ns() + "': plugin at " + b.plugin_name_ +
              " fails its health checks");
      break;
    case Note::kExternalHealthy:
      LogInfo("namespace '" + b.ns() + "': plugin is healthy again");
      break;
  }
}

void Supervisor::Apply(PluginBackend& b, const Event& event, SteadyTime now) {
  Decision d = Step(std::move(b.state_), event, now, policy_);
  b.state_ = std::move(d.state);
  if (d.unpublish) b.Publish(nullptr);
  if (d.publish) b.Publish(b.pending_);
  Report(b, d.note);
  if (d.kill) options_.launcher->Signal(b.pid_, SIGKILL);
  if (d.check) StartCheck(b.index_, d.check_timeout);
  if (d.launch) Apply(b, Spawn(b) ? Event::Launched() : Event::LaunchFailed(), now);
}

void Supervisor::Poll() {
  const SteadyTime now = options_.now();
  std::vector<Inbox::Result> results;
  {
    std::lock_guard<std::mutex> lock(inbox_->mu);
    results.swap(inbox_->results);
  }
  for (const auto& r : results) {
    Apply(*backends_[r.backend], Event::Health(r.generation, r.serving), now);
  }
  for (auto& b : backends_) {
    if (b->pid_ <= 0) continue;
    if (std::optional<int> status = options_.launcher->Reap(b->pid_, false)) {
      b->pid_ = -1;
      b->pending_.reset();
      b->last_failure_ = DescribeWaitStatus(*status);
      Apply(*b, Event::Exited(), now);
    }
  }
  for (auto& b : backends_) Apply(*b, Event::Tick(), now);
}

void Supervisor::Run() {
  std::unique_lock<std::mutex> lock(inbox_->mu);
  while (!inbox_->stopping) {
    lock.unlock();
    Poll();
    lock.lock();
    // A completed health check wakes the loop at once: a plugin that
    // answers is published without waiting for the next tick.
    inbox_->cv.wait_for(lock, std::chrono::milliseconds(20),
                        [this] { return inbox_->stopping || !inbox_->results.empty(); });
  }
}

void Supervisor::Stop() {
  {
    std::lock_guard<std::mutex> lock(inbox_->mu);
    if (stopped_) return;
    inbox_->stopping = stopped_ = true;
  }
  inbox_->cv.notify_all();
  if (thread_.joinable()) thread_.join();
  ProcessLauncher& launcher = *options_.launcher;
  for (auto& b : backends_) {
    b->Publish(nullptr);
    b->SetDownReason("is stopping");
    if (b->pid_ > 0) launcher.Signal(b->pid_, SIGTERM);
  }
  auto deadline = options_.now() + sup_.stop_timeout;
  for (;;) {
    bool any = false;
    for (auto& b : backends_) {
      if (b->pid_ <= 0) continue;
      if (std::optional<int> status = launcher.Reap(b->pid_, false)) {
        if (!(WIFEXITED(*status) && WEXITSTATUS(*status) == 0)) {
          LogWarn("namespace '" + b->ns() + "': plugin " + b->plugin_name_ + " " +
                  DescribeWaitStatus(*status) + " while stopping");
        }
        b->pid_ = -1;
      } else {
        any = true;
      }
    }
    if (!any) break;
    if (options_.now() >= deadline) {
      for (auto& b : backends_) {
        if (b->pid_ <= 0) continue;
        LogWarn("namespace '" + b->ns() + "': plugin " + b->plugin_name_ +
                " did not stop in time; SIGKILL");
        launcher.Signal(b->pid_, SIGKILL);
        launcher.Reap(b->pid_, true);
        b->pid_ = -1;
      }
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  for (auto& b : backends_) {
    if (b->launched()) unlink(b->socket_path_.c_str());
  }
}

}  // namespace prism::proxy
