#pragma once
// A real backend server (PostgreSQL, Redis, ...) for a plugin test, run by a
// script with this small protocol (plugins/postgres/scripts/throwaway-postgres.sh
// is one):
//   SCRIPT start --owner-pid PID [ARGS...]   starts a fresh server in a new
//       temporary directory and prints KEY=VALUE lines, DIR=<directory>
//       among them; the script destroys the server when PID ends, so a test
//       that crashes or times out leaves nothing running
//   SCRIPT stop DIR       stops the server, keeps its data
//   SCRIPT start DIR      starts it again (same address)
//   SCRIPT destroy DIR    stops it and removes DIR
// The destructor destroys the server (PRISM_TEST_KEEP=1 keeps DIR).

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace prism::plugin::testing {

class BackendServer {
 public:
  static absl::StatusOr<std::unique_ptr<BackendServer>> Start(const std::string& script,
                                                              const std::vector<std::string>& args);
  ~BackendServer();
  BackendServer(const BackendServer&) = delete;
  BackendServer& operator=(const BackendServer&) = delete;

  // A value the script printed ("" when absent).
  std::string Get(const std::string& key) const;
  const std::string& dir() const { return dir_; }
  absl::Status Stop();
  absl::Status StartAgain();

 private:
  BackendServer() = default;
  std::string script_, dir_;
  std::map<std::string, std::string> values_;
};

// Runs `argv` (no shell) and returns its exit code and stdout (stderr is
// inherited). -1: could not run.
int RunCapture(const std::vector<std::string>& argv, std::string* out);

}  // namespace prism::plugin::testing
