// prism-plugin-redis: KeyValue on a Redis server (hiredis).
#include <sys/stat.h>

#include <fstream>
#include <sstream>

#include "prism/plugin/serve.h"
#include "redis_service.h"

namespace {

constexpr size_t kMaxPasswordBytes = 4096;

// The password is read from a file, never taken on the command line, where
// every local user could read it in /proc/<pid>/cmdline.
absl::StatusOr<std::string> ReadPassword(const std::string& path) {
  struct stat st;
  if (stat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) {
    return absl::InvalidArgumentError("--password-file '" + path + "': not a readable file");
  }
  if (st.st_size > static_cast<off_t>(kMaxPasswordBytes)) {
    return absl::InvalidArgumentError("--password-file '" + path + "': longer than " +
                                      std::to_string(kMaxPasswordBytes) + " bytes");
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::InvalidArgumentError("--password-file '" + path + "': cannot be read");
  std::stringstream ss;
  ss << in.rdbuf();
  std::string pw = ss.str();
  while (!pw.empty() && (pw.back() == '\n' || pw.back() == '\r')) pw.pop_back();
  if (pw.empty()) return absl::InvalidArgumentError("--password-file '" + path + "': empty");
  return pw;
}

bool ValidClientName(const std::string& name) {
  if (name.size() > 128) return false;
  for (unsigned char c : name) {
    if (c <= ' ' || c >= 0x7f) return false;  // CLIENT SETNAME refuses spaces
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  prism::plugin::PluginDefinition def;
  def.name = "redis";
  def.description = "KeyValue on a Redis server; keys are \"<len(namespace)>:<namespace>:<key>\".";
  def.settings = {
      {"host", "Redis server address (an IP address, or a name: its first address)", "127.0.0.1",
       false},
      {"port", "Redis server port", "6379", false},
      {"db", "database index, SELECTed on each connection", "0", false},
      {"user", "ACL user for AUTH (needs --password-file)", "", false},
      {"password-file", "file holding the password for AUTH (trailing newline ignored)", "", false},
      {"client-name", "CLIENT SETNAME on each connection (\"\": none)", "prism-plugin-redis",
       false},
      {"pool-size", "number of Redis connections", "4", false},
      {"connect-timeout-ms", "upper bound of one connection attempt", "1000", false},
      {"command-timeout-ms", "timeout of a command when the call has no deadline", "5000", false},
  };
  def.make_service =
      [](const prism::plugin::PluginEnv& env) -> absl::StatusOr<std::unique_ptr<grpc::Service>> {
    prism::redis::RedisOptions o;
    o.host = env.settings.Get("host");
    if (o.host.empty() || o.host.size() > 255) {
      return absl::InvalidArgumentError("--host: expected an address or a host name");
    }
    auto port = env.settings.GetInt("port", 1, 65535);
    if (!port.ok()) return port.status();
    auto db = env.settings.GetInt("db", 0, 1 << 20);
    if (!db.ok()) return db.status();
    auto pool = env.settings.GetInt("pool-size", 1, 256);
    if (!pool.ok()) return pool.status();
    auto connect = env.settings.GetInt("connect-timeout-ms", 1, 600000);
    if (!connect.ok()) return connect.status();
    auto command = env.settings.GetInt("command-timeout-ms", 1, 3600000);
    if (!command.ok()) return command.status();
    o.port = static_cast<int>(*port);
    o.db = static_cast<int>(*db);
    o.pool_size = static_cast<int>(*pool);
    o.connect_timeout_ms = static_cast<int>(*connect);
    o.command_timeout_ms = static_cast<int>(*command);
    o.user = env.settings.Get("user");
    if (const std::string& file = env.settings.Get("password-file"); !file.empty()) {
      auto pw = ReadPassword(file);
      if (!pw.ok()) return pw.status();
      o.password = std::move(*pw);
    } else if (!o.user.empty()) {
      return absl::InvalidArgumentError("--user needs --password-file");
    }
    o.client_name = env.settings.Get("client-name");
    if (!ValidClientName(o.client_name)) {
      return absl::InvalidArgumentError(
          "--client-name: at most 128 printable ASCII characters without spaces");
    }
    o.tracer = env.tracer;
    auto service = prism::redis::RedisService::Open(std::move(o));
    if (!service.ok()) return service.status();
    return std::unique_ptr<grpc::Service>(std::move(*service));
  };
  return prism::plugin::Serve(argc, argv, std::move(def));
}
