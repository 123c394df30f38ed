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

NatsServer::NatsServer() : dir_(prism::plugin::testing::MakeTempDir("prism-nats-")) {
  // Another process may take a free port before the server binds it: three tries.
  for (int attempt = 0; attempt < 3 && !ok(); ++attempt) {
    port_ = prism::plugin::testing::FreePort();
    monitor_port_ = prism::plugin::testing::FreePort();
    Start();
  }
}

NatsServer::~NatsServer() {
  Kill();
  prism::plugin::testing::RemoveTempDir(dir_, "PRISM_NATS_KEEP");
}

std::string NatsServer::Log() const { return prism::plugin::testing::ReadFile(dir_ + "/nats.log"); }

bool NatsServer::Start() {
  // Clients on -p, the monitoring endpoint (/healthz, /subsz) on -m.
  std::vector<std::string> args = {PRISM_NATS_SERVER, "-a", "127.0.0.1", "-l", dir_ + "/nats.log"};
  for (auto [flag, port] : {std::pair<const char*, int>{"-p", port_}, {"-m", monitor_port_}}) {
    args.push_back(flag);
    args.push_back(std::to_string(port));
  }
  pid_t pid = prism::plugin::testing::SpawnServer(std::move(args), "nats-server");
  bool up = prism::plugin::testing::WaitServerReady(
      pid, [&] { return Monitor("/healthz").find("ok") != std::string::npos; });
  pid_ = up ? pid : -1;
  return up;
}

// On the same ports, so clients reconnect to it.
bool NatsServer::Restart() {
  prism::plugin::testing::KillServer(pid_);
  return Start();
}

void NatsServer::Kill() { prism::plugin::testing::KillServer(pid_); }

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
