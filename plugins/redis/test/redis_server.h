#pragma once
// A real redis-server for tests: loopback, a free port, its own temporary
// directory, nothing persisted (--save "" --appendonly no --dir <tmp>), and
// stopped afterwards — also when the test fails or the test process dies
// (the child gets SIGKILL when its parent goes, PR_SET_PDEATHSIG).
// Plus a plain hiredis client for the test's own look at the server.

#include <hiredis/hiredis.h>
#include <sys/types.h>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "testing.h"

namespace prism::redis::testing {

// A TCP port on 127.0.0.1 that was free a moment ago (plugin_core's testing.h).
using prism::plugin::testing::FreePort;

struct ReplyFree {
  void operator()(redisReply* r) const {
    if (r) freeReplyObject(r);
  }
};
using Reply = std::unique_ptr<redisReply, ReplyFree>;

struct ContextFree {
  void operator()(redisContext* c) const {
    if (c) redisFree(c);
  }
};
using Client = std::unique_ptr<redisContext, ContextFree>;

class RedisServer {
 public:
  // Starts redis-server and waits until it answers PING (at most 10 s);
  // ok() says whether it does. `extra` are more `--option value` arguments.
  explicit RedisServer(std::vector<std::string> extra = {});
  ~RedisServer();  // stops it and removes its directory
  RedisServer(const RedisServer&) = delete;
  RedisServer& operator=(const RedisServer&) = delete;

  bool ok() const { return pid_ > 0; }
  int port() const { return port_; }
  const std::string& dir() const { return dir_; }
  // What went wrong (its log), for assertion messages.
  std::string Log() const;

  // SIGKILL and reap (a crash: clients see their connections reset).
  void Kill();
  // Starts it again on the same port; false when it does not answer.
  bool Restart();
  void Pause();   // SIGSTOP: connections stay open, nothing is answered
  void Resume();  // SIGCONT

  // A client connected to it (1 s timeout), or null.
  Client Connect() const;
  // Runs one command (argv form) on `c`; null on a connection error.
  static Reply Command(redisContext* c, const std::vector<std::string>& argv);

 private:
  bool Start();
  std::vector<std::string> extra_;
  std::string dir_;
  int port_ = 0;
  pid_t pid_ = -1;
};

// MONITOR lines ("1700000000.123456 [0 127.0.0.1:5555] \"GET\" \"k\"") read
// back into the client address, database index and exact argument bytes.
struct MonitoredCommand {
  int db = -1;
  std::string client;  // ip:port
  std::vector<std::string> argv;
};
bool ParseMonitorLine(const std::string& line, MonitoredCommand* out);

// A MONITOR session on its own connection, from construction on.
class Monitor {
 public:
  explicit Monitor(const RedisServer& server);
  bool ok() const { return ok_; }
  // Every command the server ran since construction (or the last Collect):
  // sends a marker (ECHO) from another connection and reads up to it.
  // False with `error` set on a read or parse failure.
  bool Collect(std::vector<MonitoredCommand>* out, std::string* error);

 private:
  const RedisServer& server_;
  Client conn_;
  bool ok_ = false;
};

}  // namespace prism::redis::testing
