#pragma once
// Helpers for tests that run plugins as child processes: spawn with extra
// environment, wait until the health check answers SERVING, signal, reap,
// read the spans a plugin wrote to its trace file.

#include <grpcpp/channel.h>
#include <sys/types.h>

#include <chrono>
#include <functional>
#include <map>
#include <string>
#include <vector>

namespace prism::plugin::testing {

// A fresh private directory under $TMPDIR (or /tmp), removed by the caller's
// choice (left behind on failure for inspection).
std::string MakeTempDir(const std::string& prefix);

// Removes a test's directory unless the environment variable `keep_env` is
// set (to look at a backend server's files after a failure).
void RemoveTempDir(const std::string& dir, const char* keep_env);

// A TCP port on 127.0.0.1 that was free a moment ago.
int FreePort();

// A backend server for a test (redis-server, nats-server): `args` run as a
// child that dies with the test process (PR_SET_PDEATHSIG), stdin and
// stdout on /dev/null; args[0] is tried as given, then `name` on PATH.
// -1 when fork fails.
pid_t SpawnServer(std::vector<std::string> args, const std::string& name);
// Polls `ready` every 20 ms until it is true (true), or the child exited or
// `timeout` passed (false; the child is killed and reaped).
bool WaitServerReady(pid_t pid, const std::function<bool()>& ready,
                     std::chrono::milliseconds timeout = std::chrono::seconds(10));
// SIGCONT (it may be paused), SIGKILL and reap; `pid` becomes -1.
void KillServer(pid_t& pid);

class ChildProcess {
 public:
  // Starts `exe args...` with the current environment plus `env` (KEY=VALUE);
  // stderr goes to `stderr_path`.
  ChildProcess(const std::string& exe, const std::vector<std::string>& args,
               const std::vector<std::string>& env, const std::string& stderr_path);
  ~ChildProcess();  // SIGKILLs a child still running
  pid_t pid() const { return pid_; }
  void Signal(int sig);
  // Exit code, or 128+signal; -1 on timeout.
  int Wait(std::chrono::milliseconds timeout);
  bool running();

 private:
  pid_t pid_ = -1;
  int status_ = -1;
  bool reaped_ = false;
};

std::string ReadFile(const std::string& path);

// grpc.health.v1.Health/Check(service "") == SERVING, retried until `timeout`.
bool WaitServing(const std::string& target, std::chrono::milliseconds timeout);
bool CheckHealthOnce(const std::shared_ptr<grpc::Channel>& channel,
                     std::chrono::milliseconds timeout);

struct JsonSpan {
  std::string service_name;
  std::string trace_id, span_id, parent_span_id;
  std::string name;
  int kind = 0;         // OTLP: 1 internal, 2 server, 3 client
  int status_code = 0;  // 0 unset, 1 ok, 2 error
  std::string status_message;
  std::map<std::string, std::string> attrs;  // scalars as text (ints in decimal)
};
// Every span of every line of an OTLP/JSON trace file.
std::vector<JsonSpan> ReadTraceFile(const std::string& path);
const JsonSpan* FindSpan(const std::vector<JsonSpan>& spans, const std::string& name);

}  // namespace prism::plugin::testing
