#include "nats_server.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <thread>
#include <vector>

#include "testing.h"

namespace prism::nats::testing {

NatsServer::NatsServer() {
  dir_ = prism::plugin::testing::MakeTempDir("prism-nats-");
  for (int attempt = 0; attempt < 3 && pid_ <= 0; ++attempt) {
    port_ = prism::plugin::testing::FreePort();  // may be taken in between: try again
    monitor_port_ = prism::plugin::testing::FreePort();
    Start();
  }
}

NatsServer::~NatsServer() {
  Kill();
  if (!dir_.empty() && !std::getenv("PRISM_NATS_KEEP")) {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
}

std::string NatsServer::Log() const { return prism::plugin::testing::ReadFile(dir_ + "/nats.log"); }

bool NatsServer::Start() {
  std::vector<std::string> args = {PRISM_NATS_SERVER,
                                   "-a",
                                   "127.0.0.1",
                                   "-p",
                                   std::to_string(port_),
                                   "-m",
                                   std::to_string(monitor_port_),
                                   "-l",
                                   dir_ + "/nats.log"};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t parent = getpid();
  pid_t pid = fork();
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(1);
    int null = open("/dev/null", O_RDWR);
    if (null >= 0) {
      dup2(null, 0);
      dup2(null, 1);
      dup2(null, 2);
    }
    execv(argv[0], argv.data());
    execvp("nats-server", argv.data());
    _exit(127);
  }
  if (pid < 0) return false;
  pid_ = pid;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (std::chrono::steady_clock::now() < deadline) {
    int status;
    if (waitpid(pid, &status, WNOHANG) == pid) {
      pid_ = -1;  // exited (a port taken?)
      return false;
    }
    if (Monitor("/healthz").find("ok") != std::string::npos) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  Kill();
  return false;
}

void NatsServer::Kill() {
  if (pid_ <= 0) return;
  kill(pid_, SIGKILL);
  waitpid(pid_, nullptr, 0);
  pid_ = -1;
}

bool NatsServer::Restart() {
  Kill();
  return Start();
}

std::string NatsServer::Monitor(const std::string& path) const {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return "";
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(static_cast<uint16_t>(monitor_port_));
  timeval tv{2, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    close(fd);
    return "";
  }
  std::string req = "GET " + path + " HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
  if (write(fd, req.data(), req.size()) != static_cast<ssize_t>(req.size())) {
    close(fd);
    return "";
  }
  std::string resp;
  char buf[4096];
  ssize_t n;
  while ((n = read(fd, buf, sizeof buf)) > 0) resp.append(buf, static_cast<size_t>(n));
  close(fd);
  size_t body = resp.find("\r\n\r\n");
  return body == std::string::npos ? "" : resp.substr(body + 4);
}

int NatsServer::Subscriptions() const {
  auto j = nlohmann::json::parse(Monitor("/subsz"), nullptr, false);
  if (j.is_discarded() || !j.contains("num_subscriptions")) return -1;
  return j["num_subscriptions"].get<int>();
}

}  // namespace prism::nats::testing
