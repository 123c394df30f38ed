#include "redis_server.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <thread>

#include "testing.h"

namespace prism::redis::testing {

RedisServer::RedisServer(std::vector<std::string> extra) : extra_(std::move(extra)) {
  dir_ = prism::plugin::testing::MakeTempDir("prism-redis-");
  for (int attempt = 0; attempt < 3 && pid_ <= 0; ++attempt) {
    port_ = FreePort();  // another process may take it in between: try again
    Start();
  }
}

RedisServer::~RedisServer() {
  Kill();
  prism::plugin::testing::RemoveTempDir(dir_, "PRISM_REDIS_KEEP");
}

std::string RedisServer::Log() const {
  return prism::plugin::testing::ReadFile(dir_ + "/redis.log");
}

bool RedisServer::Start() {
  std::vector<std::string> args = {PRISM_REDIS_SERVER,
                                   "--bind",
                                   "127.0.0.1",
                                   "--port",
                                   std::to_string(port_),
                                   "--dir",
                                   dir_,
                                   "--save",
                                   "",
                                   "--appendonly",
                                   "no",
                                   "--daemonize",
                                   "no",
                                   "--logfile",
                                   dir_ + "/redis.log"};
  args.insert(args.end(), extra_.begin(), extra_.end());
  pid_t pid = prism::plugin::testing::SpawnServer(std::move(args), "redis-server");
  bool up = prism::plugin::testing::WaitServerReady(pid, [&] {
    Client c = Connect();
    Reply r = c ? Command(c.get(), {"PING"}) : nullptr;
    // PONG, or NOAUTH from a server started with --requirepass: it answers.
    return r && (r->type == REDIS_REPLY_STATUS || r->type == REDIS_REPLY_ERROR);
  });
  if (up) pid_ = pid;
  return up;
}

void RedisServer::Kill() { prism::plugin::testing::KillServer(pid_); }

bool RedisServer::Restart() {
  Kill();
  return Start();
}

void RedisServer::Pause() {
  if (pid_ > 0) kill(pid_, SIGSTOP);
}
void RedisServer::Resume() {
  if (pid_ > 0) kill(pid_, SIGCONT);
}

Client RedisServer::Connect() const {
  timeval tv{1, 0};
  Client c(redisConnectWithTimeout("127.0.0.1", port_, tv));
  if (!c || c->err) return nullptr;
  redisSetTimeout(c.get(), timeval{5, 0});
  return c;
}

Reply RedisServer::Command(redisContext* c, const std::vector<std::string>& argv) {
  std::vector<const char*> a;
  std::vector<size_t> l;
  for (const auto& s : argv) {
    a.push_back(s.data());
    l.push_back(s.size());
  }
  return Reply(static_cast<redisReply*>(
      redisCommandArgv(c, static_cast<int>(a.size()), a.data(), l.data())));
}

bool ParseMonitorLine(const std::string& line, MonitoredCommand* out) {
  // <time> [<db> <client>] "arg" "arg" ...
  size_t open = line.find(" [");
  size_t close = line.find("] ", open);
  if (open == std::string::npos || close == std::string::npos) return false;
  std::string inside = line.substr(open + 2, close - open - 2);
  size_t sp = inside.find(' ');
  if (sp == std::string::npos) return false;
  out->db = std::atoi(inside.substr(0, sp).c_str());
  out->client = inside.substr(sp + 1);
  out->argv.clear();
  size_t i = close + 2;
  auto hex = [](char c) {
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c - 'A' + 10;
  };
  while (i < line.size()) {
    if (line[i] == ' ') {
      ++i;
      continue;
    }
    if (line[i] != '"') return false;
    ++i;
    std::string arg;
    bool closed = false;
    while (i < line.size()) {
      char c = line[i++];
      if (c == '"') {
        closed = true;
        break;
      }
      if (c != '\\') {
        arg.push_back(c);
        continue;
      }
      if (i >= line.size()) return false;
      char e = line[i++];
      switch (e) {
        case 'n':
          arg.push_back('\n');
          break;
        case 'r':
          arg.push_back('\r');
          break;
        case 't':
          arg.push_back('\t');
          break;
        case 'a':
          arg.push_back('\a');
          break;
        case 'b':
          arg.push_back('\b');
          break;
        case 'x':
          if (i + 2 > line.size()) return false;
          arg.push_back(static_cast<char>(hex(line[i]) * 16 + hex(line[i + 1])));
          i += 2;
          break;
        default:
          arg.push_back(e);  // \\ and \"
      }
    }
    if (!closed) return false;
    out->argv.push_back(std::move(arg));
  }
  return true;
}

Monitor::Monitor(const RedisServer& server) : server_(server), conn_(server.Connect()) {
  if (!conn_) return;
  Reply r = RedisServer::Command(conn_.get(), {"MONITOR"});
  ok_ = r && r->type == REDIS_REPLY_STATUS;
}

bool Monitor::Collect(std::vector<MonitoredCommand>* out, std::string* error) {
  out->clear();
  const std::string marker = "prism-test-monitor-marker";
  Client other = server_.Connect();
  if (!other || !RedisServer::Command(other.get(), {"ECHO", marker})) {
    *error = "cannot send the marker";
    return false;
  }
  for (;;) {
    void* raw = nullptr;
    if (redisGetReply(conn_.get(), &raw) != REDIS_OK) {
      *error = std::string("MONITOR read failed: ") + conn_->errstr;
      return false;
    }
    Reply line(static_cast<redisReply*>(raw));
    std::string text = line->type == REDIS_REPLY_STATUS ? std::string(line->str, line->len) : "";
    MonitoredCommand m;
    if (!ParseMonitorLine(text, &m)) {
      *error = "not a MONITOR line: " + text.substr(0, 200);
      return false;
    }
    if (m.argv.size() == 2 && m.argv[0] == "ECHO" && m.argv[1] == marker) return true;
    out->push_back(std::move(m));
  }
}

}  // namespace prism::redis::testing
