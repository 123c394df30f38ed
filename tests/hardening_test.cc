// Hardening tests (issue #17), through the real binaries: what a hostile
// client, another local user or an overload can do.

#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "prism/v1/kv.grpc.pb.h"
#include "support.h"

namespace prism::e2e {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;

// Permission bits of `path` (-1 when it does not exist).
int Mode(const std::string& path) {
  struct stat st;
  if (lstat(path.c_str(), &st) != 0) return -1;
  return static_cast<int>(st.st_mode & 07777);
}

std::string Octal(int mode) {
  char b[16];
  std::snprintf(b, sizeof b, "%04o", mode);
  return b;
}

// Restores the test's umask when a test changed it.
class ScopedUmask {
 public:
  explicit ScopedUmask(mode_t m) : old_(umask(m)) {}
  ~ScopedUmask() { umask(old_); }

 private:
  mode_t old_;
};

// ---------------------------------------------------------------------------
// Data exposure

// A fresh embedded default, started with the permissive umask most shells
// have (022): the data directory is 0700, the database, its WAL files and
// the trace file 0600, and so is the CLI's own trace file.
TEST(Hardening, FreshEmbeddedDefaultIsPrivate) {
  ScopedUmask permissive(022);
  std::string dir = MakeTempDir();
  std::string data = dir + "/data";  // the harness's PRISM_DATA_DIR; does not exist yet
  // An empty PRISM_TRACE_FILE: the default, <data_dir>/traces.jsonl.
  Proxy proxy(dir, "", {}, {{"PRISM_TRACE_FILE", ""}});
  ASSERT_TRUE(proxy.ok()) << ReadFile(proxy.stderr_path());
  std::string cli_traces = dir + "/cli/traces.jsonl";  // directory created by the CLI
  auto set = RunProcess(CliBinary(), {"kv", "set", "k", "v", "--addr", proxy.address()},
                        {{"PRISM_TRACE_FILE", cli_traces}});
  ASSERT_EQ(set.exit_code, 0) << set.err;
  ASSERT_EQ(proxy.Stop(), 0);
  struct Want {
    std::string path;
    int mode;
  } wants[] = {
      {data, 0700},
      {data + "/prism.db", 0600},
      {data + "/traces.jsonl", 0600},
      {dir + "/cli", 0700},
      {cli_traces, 0600},
  };
  for (const auto& w : wants) {
    EXPECT_EQ(Octal(Mode(w.path)), Octal(w.mode)) << w.path;
  }
  EXPECT_EQ(ReadFile(proxy.stderr_path()).find("accessible by other users"), std::string::npos);
}

// -wal and -shm exist only while SQLite has the database open: checked on a
// running proxy. A Unix socket the proxy listens on is private too.
TEST(Hardening, WalFilesAndListenSocketArePrivate) {
  ScopedUmask permissive(022);
  std::string dir = MakeTempDir();
  std::string data = dir + "/data";
  std::string sock = dir + "/proxy.sock";
  Proxy proxy(dir, "", {"--listen", "unix://" + sock});
  ASSERT_TRUE(proxy.ok()) << ReadFile(proxy.stderr_path());
  auto set = RunProcess(CliBinary(), {"kv", "set", "k", "v", "--addr", "unix://" + sock},
                        {{"PRISM_TRACE_FILE", dir + "/cli.jsonl"}});
  ASSERT_EQ(set.exit_code, 0) << set.err;
  EXPECT_EQ(Octal(Mode(data + "/prism.db-wal")), "0600");
  EXPECT_EQ(Octal(Mode(data + "/prism.db-shm")), "0600");
  EXPECT_EQ(Octal(Mode(sock) & 077), "0000") << Octal(Mode(sock));
}

// A data directory that exists and is group/world accessible is used, with
// a warning that names it and its mode.
TEST(Hardening, WarnsAboutASharedDataDirectory) {
  std::string dir = MakeTempDir();
  std::string data = dir + "/data";
  ASSERT_EQ(mkdir(data.c_str(), 0700), 0);
  ASSERT_EQ(chmod(data.c_str(), 0755), 0);
  Proxy proxy(dir, "");
  ASSERT_TRUE(proxy.ok()) << ReadFile(proxy.stderr_path());
  EXPECT_NE(ReadFile(proxy.stderr_path())
                .find("warn: data directory '" + data +
                      "' is accessible by other users (mode 0755)"),
            std::string::npos)
      << ReadFile(proxy.stderr_path());
}

}  // namespace
}  // namespace prism::e2e
