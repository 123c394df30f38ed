#pragma once
// End-to-end test support: child processes with captured output, temporary
// directories, a proxy started from a YAML config.

#include <sys/types.h>

#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace prism::e2e {

std::string MakeTempDir();
void WriteFile(const std::string& path, const std::string& text);
std::string ReadFile(const std::string& path);

class Process {
 public:
  // Runs exe with args; env entries (KEY=VALUE) are added to (or replace)
  // the current environment. stdout is captured through a pipe, stderr goes
  // to `stderr_path` (or is captured too when empty).
  Process(const std::string& exe, const std::vector<std::string>& args,
          const std::map<std::string, std::string>& env = {}, const std::string& stderr_path = "");
  ~Process();  // SIGKILL if still running
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;

  pid_t pid() const { return pid_; }
  void Signal(int sig);
  // Exit code, 128+signal, or -1 on timeout.
  int Wait(std::chrono::milliseconds timeout = std::chrono::seconds(20));
  // Reads stdout until a line containing `needle` appears (returns the line)
  // or the timeout/EOF (returns "").
  std::string WaitForLine(const std::string& needle,
                          std::chrono::milliseconds timeout = std::chrono::seconds(20));
  // Everything read from stdout so far (+ what is left after exit).
  const std::string& output();

 private:
  void ReadAvailable(int timeout_ms);
  pid_t pid_ = -1;
  int out_fd_ = -1;
  bool reaped_ = false;
  int status_ = -1;
  std::string out_;
  size_t scanned_ = 0;
};

struct RunResult {
  int exit_code;
  std::string out;  // stdout
  std::string err;  // stderr
};
// Runs to completion (timeout 30 s).
RunResult RunProcess(const std::string& exe, const std::vector<std::string>& args,
                     const std::map<std::string, std::string>& env = {});

// A proxy started with a config file; its listen address parsed from the banner.
class Proxy {
 public:
  // `yaml` is written to <dir>/prism.yaml unless empty (embedded default).
  Proxy(const std::string& dir, const std::string& yaml, std::vector<std::string> extra_args = {},
        std::map<std::string, std::string> env = {});
  ~Proxy();
  bool ok() const { return !address_.empty(); }
  const std::string& address() const { return address_; }
  const std::string& banner() const { return banner_; }
  const std::string& trace_file() const { return trace_file_; }
  const std::string& stderr_path() const { return stderr_path_; }
  std::map<std::string, std::string> env() const { return env_; }
  Process& process() { return *process_; }
  // SIGTERM and wait; returns the exit code.
  int Stop();
  // The pid of the plugin serving `ns` (from the proxy's log), latest start.
  pid_t PluginPid(const std::string& ns) const;

 private:
  std::unique_ptr<Process> process_;
  std::map<std::string, std::string> env_;
  std::string address_, banner_, trace_file_, stderr_path_;
  bool stopped_ = false;
};

// Sends SIGSTOP and waits until every thread of `pid` is stopped ('T' in
// /proc/PID/task/TID/stat): kill() only queues the stop, and on a loaded VM
// the process has been seen to answer one more call first. False (and the
// process resumed) when it did not stop within `timeout`.
bool StopProcess(pid_t pid, std::chrono::milliseconds timeout);

// Paths of the binaries under test (from CMake).
std::string ProxyBinary();
std::string CliBinary();
std::vector<std::string> PluginDirs();

}  // namespace prism::e2e
