#pragma once
// A real nats-server for tests: loopback, a free client port and a free
// monitoring port (for /subsz: the subscriptions the server holds), its own
// temporary directory, stopped afterwards - also when the test process dies
// (PR_SET_PDEATHSIG). PRISM_NATS_KEEP=1 keeps the directory (its log).

#include <sys/types.h>

#include <string>

namespace prism::nats::testing {

class NatsServer {
 public:
  // Starts nats-server and waits until it answers on its monitoring port
  // (at most 10 s); ok() says whether it does.
  NatsServer();
  ~NatsServer();
  NatsServer(const NatsServer&) = delete;
  NatsServer& operator=(const NatsServer&) = delete;

  bool ok() const { return pid_ > 0; }
  int port() const { return port_; }
  std::string url() const { return "nats://127.0.0.1:" + std::to_string(port_); }
  const std::string& dir() const { return dir_; }
  std::string Log() const;

  // SIGKILL and reap: clients see their connections reset.
  void Kill();
  // Starts it again on the same ports; false when it does not answer.
  bool Restart();

  // GET http://127.0.0.1:<monitoring port><path>: the body, "" on failure.
  std::string Monitor(const std::string& path) const;
  // "num_subscriptions" of /subsz; -1 when it cannot be read.
  int Subscriptions() const;

 private:
  bool Start();
  std::string dir_;
  int port_ = 0, monitor_port_ = 0;
  pid_t pid_ = -1;
};

}  // namespace prism::nats::testing
