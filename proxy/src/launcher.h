#pragma once
// Starting, signalling and reaping plugin processes, behind an interface so
// the supervisor can be tested without processes (a fake in
// proxy/test/supervisor_test.cc). PosixLauncher is the real one: fork +
// execve with an explicit environment, waitpid.
//
// Thread-safety: PosixLauncher is stateless and safe to share; the
// supervisor calls it from its one thread (and from Stop).

#include <sys/types.h>

#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace prism::proxy {

struct LaunchSpec {
  std::vector<std::string> argv;  // argv[0]: the executable's path
  std::vector<std::string> envp;  // the child's whole environment ("NAME=value")
};

class ProcessLauncher {
 public:
  virtual ~ProcessLauncher() = default;
  // Starts the process; its id, or why it could not be started.
  virtual absl::StatusOr<pid_t> Launch(const LaunchSpec& spec) = 0;
  virtual void Signal(pid_t pid, int sig) = 0;
  // The wait status once the process has exited (and is reaped), else
  // nullopt. With `block`, waits for the exit.
  virtual std::optional<int> Reap(pid_t pid, bool block) = 0;
};

// fork/execve/waitpid. The child gets its own process group (terminal
// signals go to the proxy, which stops plugins in order), SIGTERM when the
// proxy dies (PR_SET_PDEATHSIG), and an empty signal mask.
class PosixLauncher final : public ProcessLauncher {
 public:
  absl::StatusOr<pid_t> Launch(const LaunchSpec& spec) override;
  void Signal(pid_t pid, int sig) override;
  std::optional<int> Reap(pid_t pid, bool block) override;
};

// "exited with status 1", "was killed by signal 9 (Killed)".
std::string DescribeWaitStatus(int status);

}  // namespace prism::proxy
