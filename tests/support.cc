#include "support.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <regex>
#include <sstream>
#include <thread>

extern char** environ;

namespace prism::e2e {

bool StopProcess(pid_t pid, std::chrono::milliseconds timeout) {
  if (kill(pid, SIGSTOP) != 0) return false;
  auto deadline = std::chrono::steady_clock::now() + timeout;
  const std::string tasks = "/proc/" + std::to_string(pid) + "/task";
  while (std::chrono::steady_clock::now() < deadline) {
    bool all = true, any = false;
    std::error_code ec;
    for (const auto& t : std::filesystem::directory_iterator(tasks, ec)) {
      std::string stat = ReadFile(t.path().string() + "/stat");
      size_t paren = stat.rfind(')');
      if (paren == std::string::npos || paren + 2 >= stat.size()) continue;
      any = true;
      all = all && stat[paren + 2] == 'T';
    }
    if (any && all) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  kill(pid, SIGCONT);
  return false;
}

std::string ProxyBinary() { return PRISM_PROXY_BIN; }
std::string CliBinary() { return PRISM_CLI_BIN; }
std::vector<std::string> PluginDirs() { return {PRISM_SQLITE_DIR, PRISM_MEMSTORE_DIR}; }

std::string MakeTempDir() {
  const char* base = std::getenv("TMPDIR");
  std::string tmpl = std::string(base && *base ? base : "/tmp") + "/prism-e2e-XXXXXX";
  std::vector<char> buf(tmpl.begin(), tmpl.end());
  buf.push_back('\0');
  if (!mkdtemp(buf.data())) return {};
  return buf.data();
}

void WriteFile(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

Process::Process(const std::string& exe, const std::vector<std::string>& args,
                 const std::map<std::string, std::string>& env, const std::string& stderr_path) {
  std::vector<std::string> argv_s = {exe};
  argv_s.insert(argv_s.end(), args.begin(), args.end());
  std::map<std::string, std::string> merged;
  for (char** e = environ; e && *e; ++e) {
    std::string kv = *e;
    auto eq = kv.find('=');
    if (eq != std::string::npos) merged[kv.substr(0, eq)] = kv.substr(eq + 1);
  }
  for (const auto& [k, v] : env) {
    if (v.empty()) {
      merged.erase(k);
    } else {
      merged[k] = v;
    }
  }
  std::vector<std::string> env_s;
  for (const auto& [k, v] : merged) env_s.push_back(k + "=" + v);
  std::vector<char*> argv, envp;
  for (auto& a : argv_s) argv.push_back(a.data());
  argv.push_back(nullptr);
  for (auto& e : env_s) envp.push_back(e.data());
  envp.push_back(nullptr);

  int out_pipe[2];
  if (pipe2(out_pipe, O_CLOEXEC) != 0) return;
  int err_fd = -1;
  if (!stderr_path.empty()) {
    err_fd = open(stderr_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  }
  pid_ = fork();
  if (pid_ == 0) {
    dup2(out_pipe[1], 1);
    dup2(err_fd >= 0 ? err_fd : out_pipe[1], 2);
    execve(argv[0], argv.data(), envp.data());
    _exit(127);
  }
  close(out_pipe[1]);
  if (err_fd >= 0) close(err_fd);
  out_fd_ = out_pipe[0];
}

Process::~Process() {
  if (pid_ > 0 && !reaped_) {
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
  }
  if (out_fd_ >= 0) close(out_fd_);
}

void Process::Signal(int sig) {
  if (pid_ > 0 && !reaped_) kill(pid_, sig);
}

void Process::ReadAvailable(int timeout_ms) {
  if (out_fd_ < 0) return;
  pollfd p{out_fd_, POLLIN, 0};
  if (poll(&p, 1, timeout_ms) <= 0) return;
  char buf[65536];
  ssize_t n = read(out_fd_, buf, sizeof buf);
  if (n > 0) {
    out_.append(buf, static_cast<size_t>(n));
  } else if (n == 0) {
    close(out_fd_);
    out_fd_ = -1;
  }
}

int Process::Wait(std::chrono::milliseconds timeout) {
  if (pid_ <= 0) return -1;
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!reaped_) {
    int st;
    pid_t r = waitpid(pid_, &st, WNOHANG);
    if (r == pid_) {
      reaped_ = true;
      status_ = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
      break;
    }
    if (std::chrono::steady_clock::now() >= deadline) return -1;
    ReadAvailable(10);
  }
  while (out_fd_ >= 0) ReadAvailable(100);
  return status_;
}

std::string Process::WaitForLine(const std::string& needle, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    size_t pos = out_.find(needle, scanned_);
    if (pos != std::string::npos) {
      size_t start = out_.rfind('\n', pos);
      start = start == std::string::npos ? 0 : start + 1;
      size_t end = out_.find('\n', pos);
      if (end != std::string::npos) {
        scanned_ = end;
        return out_.substr(start, end - start);
      }
    }
    if (out_fd_ < 0 || std::chrono::steady_clock::now() >= deadline) return {};
    ReadAvailable(20);
  }
}

const std::string& Process::output() {
  ReadAvailable(0);
  return out_;
}

RunResult RunProcess(const std::string& exe, const std::vector<std::string>& args,
                     const std::map<std::string, std::string>& env) {
  std::string err_path = MakeTempDir() + "/stderr";
  RunResult r;
  {
    Process p(exe, args, env, err_path);
    r.exit_code = p.Wait(std::chrono::seconds(30));
    r.out = p.output();
  }
  r.err = ReadFile(err_path);
  unlink(err_path.c_str());
  rmdir(err_path.substr(0, err_path.rfind('/')).c_str());
  return r;
}

Proxy::Proxy(const std::string& dir, const std::string& yaml, std::vector<std::string> extra_args,
             std::map<std::string, std::string> env) {
  trace_file_ = dir + "/traces.jsonl";
  stderr_path_ = dir + "/proxy.stderr";
  env_ = std::move(env);
  env_.emplace("PRISM_TRACE_FILE", trace_file_);
  env_.emplace("PRISM_DATA_DIR", dir + "/data");
  env_.emplace("OTEL_BSP_SCHEDULE_DELAY", "100");
  std::vector<std::string> args;
  for (const auto& d : PluginDirs()) {
    args.push_back("--plugin-dir");
    args.push_back(d);
  }
  bool has_listen = false;
  for (const auto& a : extra_args) has_listen = has_listen || a == "--listen";
  if (!has_listen) {
    args.push_back("--listen");
    args.push_back("127.0.0.1:0");
  }
  if (!yaml.empty()) {
    WriteFile(dir + "/prism.yaml", yaml);
    args.push_back("--config");
    args.push_back(dir + "/prism.yaml");
  }
  args.insert(args.end(), extra_args.begin(), extra_args.end());
  process_ = std::make_unique<Process>(ProxyBinary(), args, env_, stderr_path_);
  std::string line = process_->WaitForLine("prism-proxy listening on ");
  if (line.empty()) return;
  std::smatch m;
  std::regex re("listening on (\\S+)");
  if (std::regex_search(line, m, re)) address_ = m[1];
  // The rest of the banner (namespaces, auth, traces).
  process_->WaitForLine("traces ->", std::chrono::seconds(5));
  banner_ = process_->output();
}

Proxy::~Proxy() {
  if (!stopped_) Stop();
}

int Proxy::Stop() {
  stopped_ = true;
  process_->Signal(SIGTERM);
  return process_->Wait(std::chrono::seconds(30));
}

pid_t Proxy::PluginPid(const std::string& ns) const {
  std::string log = ReadFile(stderr_path_);
  std::regex re("namespace '" + ns + "': started \\S+ \\(pid (\\d+)\\)");
  pid_t pid = -1;
  for (std::sregex_iterator it(log.begin(), log.end(), re), end; it != end; ++it) {
    pid = std::stoi((*it)[1]);
  }
  return pid;
}

}  // namespace prism::e2e
