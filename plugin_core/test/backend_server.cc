#include "backend_server.h"

#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <sstream>

namespace prism::plugin::testing {

int RunCapture(const std::vector<std::string>& argv, std::string* out) {
  int fds[2];
  if (pipe(fds) != 0) return -1;
  std::vector<std::string> copy = argv;
  std::vector<char*> args;
  for (auto& a : copy) args.push_back(a.data());
  args.push_back(nullptr);
  pid_t pid = fork();
  if (pid < 0) return -1;
  if (pid == 0) {
    dup2(fds[1], STDOUT_FILENO);
    close(fds[0]);
    close(fds[1]);
    execvp(args[0], args.data());
    _exit(127);
  }
  close(fds[1]);
  char buf[4096];
  ssize_t n;
  while ((n = read(fds[0], buf, sizeof buf)) > 0 || (n < 0 && errno == EINTR)) {
    if (n > 0 && out) out->append(buf, static_cast<size_t>(n));
  }
  close(fds[0]);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

absl::StatusOr<std::unique_ptr<BackendServer>> BackendServer::Start(
    const std::string& script, const std::vector<std::string>& args) {
  std::vector<std::string> argv = {script, "start", "--owner-pid", std::to_string(getpid())};
  argv.insert(argv.end(), args.begin(), args.end());
  std::string out;
  int rc = RunCapture(argv, &out);
  if (rc != 0) {
    return absl::UnavailableError(script + " start failed (exit " + std::to_string(rc) + ")");
  }
  std::unique_ptr<BackendServer> s(new BackendServer());
  s->script_ = script;
  std::istringstream in(out);
  std::string line;
  while (std::getline(in, line)) {
    size_t eq = line.find('=');
    if (eq != std::string::npos) s->values_[line.substr(0, eq)] = line.substr(eq + 1);
  }
  s->dir_ = s->Get("DIR");
  if (s->dir_.empty()) return absl::InternalError(script + " start printed no DIR=: " + out);
  return s;
}

BackendServer::~BackendServer() {
  const char* keep = std::getenv("PRISM_TEST_KEEP");
  if (keep && *keep == '1') {
    (void)Stop();
    return;
  }
  RunCapture({script_, "destroy", dir_}, nullptr);
}

std::string BackendServer::Get(const std::string& key) const {
  auto it = values_.find(key);
  return it == values_.end() ? "" : it->second;
}

absl::Status BackendServer::Stop() {
  int rc = RunCapture({script_, "stop", dir_}, nullptr);
  if (rc != 0)
    return absl::UnavailableError(script_ + " stop failed (exit " + std::to_string(rc) + ")");
  return absl::OkStatus();
}

absl::Status BackendServer::StartAgain() {
  int rc = RunCapture({script_, "start", dir_}, nullptr);
  if (rc != 0)
    return absl::UnavailableError(script_ + " start failed (exit " + std::to_string(rc) + ")");
  return absl::OkStatus();
}

}  // namespace prism::plugin::testing
