#include "testing.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

extern char** environ;

namespace prism::plugin::testing {

int FreePort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  socklen_t len = sizeof a;
  int port = 0;
  if (bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 &&
      getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0) {
    port = ntohs(a.sin_port);
  }
  close(fd);
  return port;
}

void RemoveTempDir(const std::string& dir, const char* keep_env) {
  if (dir.empty() || std::getenv(keep_env)) return;
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
}

pid_t SpawnServer(std::vector<std::string> args, const std::string& name) {
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t parent = getpid();
  pid_t pid = fork();
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(1);  // the parent is already gone
    int null = open("/dev/null", O_RDWR);
    if (null >= 0) {
      dup2(null, 0);
      dup2(null, 1);
    }
    execv(argv[0], argv.data());
    execvp(name.c_str(), argv.data());
    _exit(127);
  }
  return pid;
}

bool WaitServerReady(pid_t pid, const std::function<bool()>& ready,
                     std::chrono::milliseconds timeout) {
  if (pid <= 0) return false;
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    int status;
    if (waitpid(pid, &status, WNOHANG) == pid) return false;  // exited (port taken?)
    if (ready()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  KillServer(pid);
  return false;
}

void KillServer(pid_t& pid) {
  if (pid <= 0) return;
  kill(pid, SIGCONT);
  kill(pid, SIGKILL);
  waitpid(pid, nullptr, 0);
  pid = -1;
}

std::string MakeTempDir(const std::string& prefix) {
  const char* tmp = std::getenv("TMPDIR");
  std::string templ = std::string(tmp && *tmp ? tmp : "/tmp") + "/" + prefix + "XXXXXX";
  std::vector<char> buf(templ.begin(), templ.end());
  buf.push_back('\0');
  if (mkdtemp(buf.data()) == nullptr) return "";
  return std::string(buf.data());
}

ChildProcess::ChildProcess(const std::string& exe, const std::vector<std::string>& args,
                           const std::vector<std::string>& env, const std::string& stderr_path) {
  std::vector<std::string> argv_s;
  argv_s.push_back(exe);
  argv_s.insert(argv_s.end(), args.begin(), args.end());
  std::vector<std::string> env_s;
  for (char** e = environ; e && *e; ++e) env_s.emplace_back(*e);
  for (const auto& kv : env) {
    std::string key = kv.substr(0, kv.find('=') + 1);
    std::erase_if(env_s, [&](const std::string& x) { return x.rfind(key, 0) == 0; });
    env_s.push_back(kv);
  }
  std::vector<char*> argv, envp;
  for (auto& a : argv_s) argv.push_back(a.data());
  argv.push_back(nullptr);
  for (auto& e : env_s) envp.push_back(e.data());
  envp.push_back(nullptr);
  int fd = open(stderr_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  pid_ = fork();
  if (pid_ == 0) {
    if (fd >= 0) dup2(fd, STDERR_FILENO);
    execve(argv[0], argv.data(), envp.data());
    _exit(127);
  }
  if (fd >= 0) close(fd);
}

ChildProcess::~ChildProcess() {
  if (pid_ > 0 && !reaped_) {
    kill(pid_, SIGKILL);
    waitpid(pid_, &status_, 0);
  }
}

void ChildProcess::Signal(int sig) {
  if (pid_ > 0 && !reaped_) kill(pid_, sig);
}

bool ChildProcess::running() {
  if (reaped_ || pid_ <= 0) return false;
  if (waitpid(pid_, &status_, WNOHANG) == pid_) {
    reaped_ = true;
    return false;
  }
  return true;
}

int ChildProcess::Wait(std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!reaped_) {
    if (pid_ <= 0) return -1;
    pid_t r = waitpid(pid_, &status_, WNOHANG);
    if (r == pid_) {
      reaped_ = true;
      break;
    }
    if (std::chrono::steady_clock::now() > deadline) return -1;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  if (WIFEXITED(status_)) return WEXITSTATUS(status_);
  if (WIFSIGNALED(status_)) return 128 + WTERMSIG(status_);
  return -1;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

bool CheckHealthOnce(const std::shared_ptr<grpc::Channel>& channel,
                     std::chrono::milliseconds timeout) {
  // HealthCheckRequest{service: ""} is the empty message; the response
  // HealthCheckResponse{status: SERVING(1)} is the two bytes 08 01.
  grpc::GenericStub stub(channel);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + timeout);
  grpc::CompletionQueue cq;
  grpc::ByteBuffer request, response;
  grpc::Slice empty("", 0);
  request = grpc::ByteBuffer(&empty, 1);
  auto call = stub.PrepareUnaryCall(&ctx, "/grpc.health.v1.Health/Check", request, &cq);
  call->StartCall();
  grpc::Status status;
  call->Finish(&response, &status, reinterpret_cast<void*>(1));
  void* tag;
  bool ok;
  if (!cq.Next(&tag, &ok)) return false;
  cq.Shutdown();
  while (cq.Next(&tag, &ok)) {
  }
  if (!status.ok()) return false;
  std::vector<grpc::Slice> slices;
  response.Dump(&slices);
  std::string bytes;
  for (auto& s : slices) bytes.append(reinterpret_cast<const char*>(s.begin()), s.size());
  return bytes == std::string("\x08\x01", 2);
}

bool WaitServing(const std::string& target, std::chrono::milliseconds timeout) {
  // Short reconnect backoff: the first attempts may precede the socket.
  // (Not GRPC_ARG_MIN_RECONNECT_BACKOFF_MS: that is the connect timeout, and
  // a tiny one never connects on a loaded machine.)
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 20);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 100);
  auto channel = grpc::CreateCustomChannel(target, grpc::InsecureChannelCredentials(), args);
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (CheckHealthOnce(channel, std::chrono::milliseconds(200))) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return false;
}

std::vector<JsonSpan> ReadTraceFile(const std::string& path) {
  std::vector<JsonSpan> out;
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    auto j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded()) continue;
    for (const auto& rs : j.value("resourceSpans", nlohmann::json::array())) {
      std::string service;
      if (rs.contains("resource")) {
        for (const auto& a : rs["resource"].value("attributes", nlohmann::json::array())) {
          if (a.value("key", "") == "service.name") {
            service = a["value"].value("stringValue", "");
          }
        }
      }
      for (const auto& ss : rs.value("scopeSpans", nlohmann::json::array())) {
        for (const auto& s : ss.value("spans", nlohmann::json::array())) {
          JsonSpan js;
          js.service_name = service;
          js.trace_id = s.value("traceId", "");
          js.span_id = s.value("spanId", "");
          js.parent_span_id = s.value("parentSpanId", "");
          js.name = s.value("name", "");
          js.kind = s.value("kind", 0);
          if (s.contains("status")) {
            js.status_code = s["status"].value("code", 0);
            js.status_message = s["status"].value("message", "");
          }
          for (const auto& a : s.value("attributes", nlohmann::json::array())) {
            const auto& v = a["value"];
            std::string text;
            if (v.contains("stringValue")) {
              text = v["stringValue"].get<std::string>();
            } else if (v.contains("intValue")) {
              text = v["intValue"].is_string() ? v["intValue"].get<std::string>()
                                               : std::to_string(v["intValue"].get<int64_t>());
            } else if (v.contains("boolValue")) {
              text = v["boolValue"].get<bool>() ? "true" : "false";
            } else {
              text = v.dump();
            }
            js.attrs[a.value("key", "")] = text;
          }
          out.push_back(std::move(js));
        }
      }
    }
  }
  return out;
}

const JsonSpan* FindSpan(const std::vector<JsonSpan>& spans, const std::string& name) {
  for (const auto& s : spans) {
    if (s.name == name) return &s;
  }
  return nullptr;
}

}  // namespace prism::plugin::testing
