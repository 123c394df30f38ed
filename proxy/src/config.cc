#include "config.h"

#include <yaml-cpp/yaml.h>

#include <cctype>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <set>
#include <sstream>

#include "prism/tracing/exporters/file_exporter.h"

namespace prism::proxy {
namespace {

// Builds "source:line:col: key: message" errors from yaml-cpp marks.
class Parser {
 public:
  explicit Parser(std::string source) : source_(std::move(source)) {}

  absl::Status Error(const YAML::Node& node, const std::string& key, const std::string& msg) const {
    return absl::InvalidArgumentError(Where(node) + ": " + (key.empty() ? "(top level)" : key) +
                                      ": " + msg);
  }

  // "source:line:col" of `node` ("source" alone when yaml-cpp has no mark).
  std::string Where(const YAML::Node& node) const {
    YAML::Mark m = node.Mark();
    if (m.is_null()) return source_;
    return source_ + ":" + std::to_string(m.line + 1) + ":" + std::to_string(m.column + 1);
  }

  // Checks that `node` is a map with only `allowed` keys.
  absl::Status CheckMap(const YAML::Node& node, const std::string& key,
                        std::initializer_list<const char*> allowed) const {
    if (!node.IsMap()) return Error(node, key, "expected a mapping");
    for (const auto& kv : node) {
      if (!kv.first.IsScalar()) return Error(kv.first, key, "keys must be strings");
      std::string k = kv.first.Scalar();
      bool ok = false;
      for (const char* a : allowed) ok = ok || k == a;
      if (!ok) {
        std::string list;
        for (const char* a : allowed) list += std::string(list.empty() ? "" : ", ") + a;
        return Error(kv.first, Join(key, k), "unknown key (expected one of: " + list + ")");
      }
    }
    return absl::OkStatus();
  }

  absl::StatusOr<std::string> String(const YAML::Node& node, const std::string& key) const {
    if (!node.IsScalar()) return Error(node, key, "expected a string");
    return node.Scalar();
  }

  absl::StatusOr<std::chrono::milliseconds> Millis(const YAML::Node& node,
                                                   const std::string& key) const {
    if (!node.IsScalar()) return Error(node, key, "expected a duration in milliseconds");
    const std::string& s = node.Scalar();
    char* end = nullptr;
    errno = 0;
    long long v = std::strtoll(s.c_str(), &end, 10);
    std::string unit = end ? std::string(end) : "";
    if (s.empty() || end == s.c_str() || errno != 0 || v < 0 || v > 86400000LL ||
        (unit != "" && unit != "ms" && unit != "s")) {
      return Error(node, key, "expected a duration like 500, 500ms or 2s (got '" + s + "')");
    }
    if (unit == "s") v *= 1000;
    return std::chrono::milliseconds(v);
  }

  static std::string Join(const std::string& a, const std::string& b) {
    return a.empty() ? b : a + "." + b;
  }

  const std::string& source() const { return source_; }

 private:
  std::string source_;
};

#define ASSIGN_OR_RETURN_IMPL(var, expr, tmp) \
  auto tmp = (expr);                          \
  if (!tmp.ok()) return tmp.status();         \
  var = std::move(*tmp)
#define PRISM_CAT2(a, b) a##b
#define PRISM_CAT(a, b) PRISM_CAT2(a, b)
#define ASSIGN_OR_RETURN(var, expr) \
  ASSIGN_OR_RETURN_IMPL(var, expr, PRISM_CAT(status_or_, __LINE__))
#define RETURN_IF_ERROR(expr) \
  do {                        \
    absl::Status s_ = (expr); \
    if (!s_.ok()) return s_;  \
  } while (0)

bool ValidNamespaceName(const std::string& n) {
  if (n.empty() || n.size() > 128) return false;
  for (char c : n) {
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.')) {
      return false;
    }
  }
  return true;
}

bool IsLowerHex(const std::string& s) {
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

absl::Status ParsePlugin(const Parser& p, const YAML::Node& node, const std::string& key,
                         PluginConfig& out) {
  RETURN_IF_ERROR(p.CheckMap(node, key, {"command", "address", "settings"}));
  if (node["command"] && node["address"]) {
    return p.Error(node, key, "set exactly one of 'command' or 'address', not both");
  }
  if (!node["command"] && !node["address"]) {
    return p.Error(node, key, "set exactly one of 'command' or 'address'");
  }
  if (const auto& cmd = node["command"]) {
    std::string k = Parser::Join(key, "command");
    out.command_where = p.Where(cmd);
    if (cmd.IsScalar()) {
      // A single string: split on whitespace (no quoting rules).
      std::istringstream in(cmd.Scalar());
      std::string w;
      while (in >> w) out.command.push_back(w);
    } else if (cmd.IsSequence()) {
      for (const auto& item : cmd) {
        ASSIGN_OR_RETURN(std::string s, p.String(item, k));
        out.command.push_back(std::move(s));
      }
    } else {
      return p.Error(cmd, k, "expected a list of strings, e.g. [prism-plugin-sqlite]");
    }
    if (out.command.empty() || out.command[0].empty()) {
      return p.Error(cmd, k, "the command is empty");
    }
  }
  if (const auto& addr = node["address"]) {
    std::string k = Parser::Join(key, "address");
    ASSIGN_OR_RETURN(out.address, p.String(addr, k));
    if (std::string why = AddressProblem(out.address, /*listening=*/false); !why.empty()) {
      return p.Error(addr, k, why);
    }
  }
  if (const auto& settings = node["settings"]) {
    std::string k = Parser::Join(key, "settings");
    if (!settings.IsMap()) return p.Error(settings, k, "expected a mapping of setting: value");
    if (!out.launched()) {
      return p.Error(settings, k,
                     "settings are handed to a plugin the proxy launches; with 'address' "
                     "configure the plugin where it runs");
    }
    for (const auto& kv : settings) {
      ASSIGN_OR_RETURN(std::string name, p.String(kv.first, k));
      std::string vk = Parser::Join(k, name);
      if (name.empty() || name[0] == '-') {
        return p.Error(kv.first, vk, "setting names are written without leading dashes");
      }
      ASSIGN_OR_RETURN(std::string value, p.String(kv.second, vk));
      out.settings[name] = value;
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<uint8_t> ParseRights(const Parser& p, const YAML::Node& node,
                                    const std::string& key) {
  std::vector<YAML::Node> items;
  if (node.IsScalar()) {
    items.push_back(node);
  } else if (node.IsSequence()) {
    for (const auto& n : node) items.push_back(n);
  } else {
    return p.Error(node, key,
                   "expected rights: one of read, write, publish, subscribe or a list of them");
  }
  uint8_t rights = kNone;
  for (const auto& n : items) {
    ASSIGN_OR_RETURN(std::string r, p.String(n, key));
    if (r == "read") {
      rights |= kRead;
    } else if (r == "write") {
      rights |= kWrite;
    } else if (r == "read-write" || r == "rw" || r == "readwrite") {
      rights |= kRead | kWrite;
    } else if (r == "publish") {
      rights |= kPublish;
    } else if (r == "subscribe") {
      rights |= kSubscribe;
    } else {
      return p.Error(n, key,
                     "unknown right '" + r + "' (expected read, write, publish or subscribe)");
    }
  }
  return rights;
}

absl::Status ParseTokens(const Parser& p, const YAML::Node& node, Config& config) {
  if (!node.IsSequence()) return p.Error(node, "tokens", "expected a list of tokens");
  std::set<std::string> names, hashes;
  int i = 0;
  for (const auto& t : node) {
    std::string key = "tokens[" + std::to_string(i++) + "]";
    RETURN_IF_ERROR(p.CheckMap(t, key, {"name", "sha256", "rights"}));
    TokenConfig tc;
    if (!t["name"]) return p.Error(t, key, "missing 'name'");
    ASSIGN_OR_RETURN(tc.name, p.String(t["name"], key + ".name"));
    if (tc.name.empty()) return p.Error(t["name"], key + ".name", "the name is empty");
    if (!names.insert(tc.name).second) {
      return p.Error(t["name"], key + ".name", "duplicate token name '" + tc.name + "'");
    }
    if (!t["sha256"]) {
      return p.Error(t, key,
                     "missing 'sha256' (the token's SHA-256 in hex; `prism token hash` prints it)");
    }
    ASSIGN_OR_RETURN(tc.sha256, p.String(t["sha256"], key + ".sha256"));
    for (auto& c : tc.sha256) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (tc.sha256.size() != 64 || !IsLowerHex(tc.sha256)) {
      return p.Error(t["sha256"], key + ".sha256",
                     "expected 64 hex digits (the SHA-256 of the token, never the token itself)");
    }
    if (!hashes.insert(tc.sha256).second) {
      return p.Error(t["sha256"], key + ".sha256", "the same token hash is listed twice");
    }
    if (!t["rights"]) return p.Error(t, key, "missing 'rights' (namespace: [read, write])");
    const YAML::Node& rights = t["rights"];
    if (!rights.IsMap()) {
      return p.Error(rights, key + ".rights", "expected a mapping of namespace: [read, write]");
    }
    for (const auto& kv : rights) {
      ASSIGN_OR_RETURN(std::string ns, p.String(kv.first, key + ".rights"));
      ASSIGN_OR_RETURN(uint8_t r, ParseRights(p, kv.second, key + ".rights." + ns));
      tc.rights[ns] = r;
    }
    config.tokens.push_back(std::move(tc));
  }
  return absl::OkStatus();
}

absl::Status ParseOptionalString(const Parser& p, const YAML::Node& parent, const char* name,
                                 const std::string& key, std::optional<std::string>& out) {
  if (const auto& n = parent[name]) {
    ASSIGN_OR_RETURN(std::string s, p.String(n, Parser::Join(key, name)));
    out = std::move(s);
  }
  return absl::OkStatus();
}

absl::Status ParseTracing(const Parser& p, const YAML::Node& node, TracingConfig& t) {
  RETURN_IF_ERROR(
      p.CheckMap(node, "tracing",
                 {"service_name", "sampler", "sampler_arg", "adaptive", "exporters",
                  "otlp_endpoint", "otlp_protocol", "trace_file", "trace_file_max_mb"}));
  RETURN_IF_ERROR(ParseOptionalString(p, node, "service_name", "tracing", t.service_name));
  RETURN_IF_ERROR(ParseOptionalString(p, node, "sampler", "tracing", t.sampler));
  RETURN_IF_ERROR(ParseOptionalString(p, node, "sampler_arg", "tracing", t.sampler_arg));
  RETURN_IF_ERROR(ParseOptionalString(p, node, "otlp_endpoint", "tracing", t.otlp_endpoint));
  RETURN_IF_ERROR(ParseOptionalString(p, node, "otlp_protocol", "tracing", t.otlp_protocol));
  RETURN_IF_ERROR(ParseOptionalString(p, node, "trace_file", "tracing", t.trace_file));
  RETURN_IF_ERROR(
      ParseOptionalString(p, node, "trace_file_max_mb", "tracing", t.trace_file_max_mb));
  if (t.trace_file_max_mb) {
    const std::string& v = *t.trace_file_max_mb;
    char* end = nullptr;
    errno = 0;
    long long mb = std::strtoll(v.c_str(), &end, 10);
    if (v.empty() || *end != '\0' || errno != 0 || mb < 0 || mb > (1ll << 40)) {
      return p.Error(node["trace_file_max_mb"], "tracing.trace_file_max_mb",
                     "expected a whole number of MiB (0: no cap)");
    }
  }
  if (t.sampler && (*t.sampler == "adaptive" || *t.sampler == "prism_adaptive")) {
    if (t.sampler_arg) {
      return p.Error(node["sampler_arg"], "tracing.sampler_arg",
                     "the adaptive sampler takes its settings from tracing.adaptive "
                     "(ratio, slow, buffer_mb)");
    }
    t.sampler = "prism_adaptive";
    AdaptiveConfig a;
    if (const auto& n = node["adaptive"]) {
      RETURN_IF_ERROR(p.CheckMap(n, "tracing.adaptive", {"ratio", "slow", "buffer_mb"}));
      if (const auto& r = n["ratio"]) {
        ASSIGN_OR_RETURN(std::string v, p.String(r, "tracing.adaptive.ratio"));
        char* end = nullptr;
        double d = std::strtod(v.c_str(), &end);
        if (v.empty() || *end != '\0' || !(d >= 0.0 && d <= 1.0)) {
          return p.Error(r, "tracing.adaptive.ratio", "expected a probability between 0 and 1");
        }
        a.ratio = d;
      }
      if (const auto& sl = n["slow"]) {
        ASSIGN_OR_RETURN(a.slow, p.Millis(sl, "tracing.adaptive.slow"));
      }
      if (const auto& b = n["buffer_mb"]) {
        ASSIGN_OR_RETURN(std::string v, p.String(b, "tracing.adaptive.buffer_mb"));
        char* end = nullptr;
        errno = 0;
        long long mb = std::strtoll(v.c_str(), &end, 10);
        if (v.empty() || *end != '\0' || errno != 0 || mb < 1 || mb > 65536) {
          return p.Error(b, "tracing.adaptive.buffer_mb",
                         "expected a whole number of MiB, 1-65536");
        }
        a.buffer_mb = mb;
      }
    }
    t.adaptive = a;
  } else if (const auto& n = node["adaptive"]) {
    return p.Error(n, "tracing.adaptive", "set only with 'sampler: adaptive'");
  } else if (t.sampler) {
    static const std::set<std::string> kSamplers = {"always_on",
                                                    "always_off",
                                                    "traceidratio",
                                                    "parentbased_always_on",
                                                    "parentbased_always_off",
                                                    "parentbased_traceidratio"};
    if (!kSamplers.count(*t.sampler)) {
      return p.Error(node["sampler"], "tracing.sampler",
                     "unknown sampler '" + *t.sampler +
                         "' (adaptive, always_on, always_off, traceidratio, "
                         "parentbased_always_on, parentbased_always_off, "
                         "parentbased_traceidratio)");
    }
  }
  if (t.sampler_arg) {
    char* end = nullptr;
    double v = std::strtod(t.sampler_arg->c_str(), &end);
    if (end == t.sampler_arg->c_str() || *end != '\0' || !(v >= 0.0 && v <= 1.0)) {
      return p.Error(node["sampler_arg"], "tracing.sampler_arg",
                     "expected a probability between 0 and 1");
    }
  }
  if (const auto& e = node["exporters"]) {
    std::string list;
    std::vector<YAML::Node> items;
    if (e.IsScalar()) {
      items.push_back(e);
    } else if (e.IsSequence()) {
      for (const auto& n : e) items.push_back(n);
    } else {
      return p.Error(e, "tracing.exporters", "expected a list, e.g. [file, otlp]");
    }
    for (const auto& n : items) {
      ASSIGN_OR_RETURN(std::string s, p.String(n, "tracing.exporters"));
      std::istringstream in(s);
      std::string one;
      while (std::getline(in, one, ',')) {
        if (one != "file" && one != "otlp" && one != "console" && one != "none") {
          return p.Error(n, "tracing.exporters",
                         "unknown exporter '" + one + "' (file, otlp, console, none)");
        }
        list += (list.empty() ? "" : ",") + one;
      }
    }
    t.exporters = list;
  }
  return absl::OkStatus();
}

absl::StatusOr<int> WholeNumber(const Parser& p, const YAML::Node& n, const std::string& key,
                                int min, int max) {
  ASSIGN_OR_RETURN(std::string text, p.String(n, key));
  int v = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || end != text.data() + text.size() || v < min || v > max) {
    return p.Error(n, key,
                   "expected a whole number from " + std::to_string(min) + " to " +
                       std::to_string(max) + " (got '" + text + "')");
  }
  return v;
}

absl::Status ParseSupervision(const Parser& p, const YAML::Node& node, SupervisionConfig& s) {
  RETURN_IF_ERROR(
      p.CheckMap(node, "supervision",
                 {"health_interval", "health_timeout", "start_timeout", "restart_backoff_initial",
                  "restart_backoff_max", "stop_timeout", "max_restarts", "restart_window"}));
  struct Field {
    const char* name;
    std::chrono::milliseconds* out;
  } fields[] = {{"health_interval", &s.health_interval},
                {"health_timeout", &s.health_timeout},
                {"start_timeout", &s.start_timeout},
                {"restart_backoff_initial", &s.restart_backoff_initial},
                {"restart_backoff_max", &s.restart_backoff_max},
                {"stop_timeout", &s.stop_timeout},
                {"restart_window", &s.restart_window}};
  for (auto& f : fields) {
    if (const auto& n = node[f.name]) {
      ASSIGN_OR_RETURN(*f.out, p.Millis(n, std::string("supervision.") + f.name));
      if (f.out->count() == 0 && std::string(f.name) != "stop_timeout") {
        return p.Error(n, std::string("supervision.") + f.name, "must be greater than 0");
      }
    }
  }
  if (const auto& n = node["max_restarts"]) {
    ASSIGN_OR_RETURN(s.max_restarts, WholeNumber(p, n, "supervision.max_restarts", 0, 1000000));
  }
  if (s.restart_backoff_max < s.restart_backoff_initial) {
    return p.Error(node, "supervision.restart_backoff_max",
                   "must not be smaller than restart_backoff_initial");
  }
  return absl::OkStatus();
}

absl::Status ParseLimits(const Parser& p, const YAML::Node& node, LimitsConfig& l) {
  RETURN_IF_ERROR(
      p.CheckMap(node, "limits",
                 {"max_concurrent_streams", "max_connections", "default_deadline", "memory_mb"}));
  struct IntField {
    const char* name;
    int* out;
    int min, max;
  } ints[] = {{"max_concurrent_streams", &l.max_concurrent_streams, 1, 100000},
              {"max_connections", &l.max_connections, 1, 65536},
              {"memory_mb", &l.memory_mb, 16, 1 << 20}};
  for (auto& f : ints) {
    const auto& n = node[f.name];
    if (!n) continue;
    ASSIGN_OR_RETURN(*f.out, WholeNumber(p, n, std::string("limits.") + f.name, f.min, f.max));
  }
  if (const auto& n = node["default_deadline"]) {
    ASSIGN_OR_RETURN(l.default_deadline, p.Millis(n, "limits.default_deadline"));
    if (l.default_deadline.count() == 0) {
      return p.Error(n, "limits.default_deadline", "must be greater than 0");
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<Config> ParseConfig(const std::string& yaml_text, const std::string& source_name) {
  Parser p(source_name);
  // yaml-cpp stops reading at a NUL byte: a binary file would pass as empty.
  if (size_t nul = yaml_text.find('\0'); nul != std::string::npos) {
    return absl::InvalidArgumentError(
        source_name + ": not a YAML text file (a NUL byte at offset " + std::to_string(nul) + ")");
  }
  YAML::Node root;
  try {
    root = YAML::Load(yaml_text);
  } catch (const YAML::Exception& e) {
    std::ostringstream out;
    out << source_name;
    if (!e.mark.is_null()) out << ":" << e.mark.line + 1 << ":" << e.mark.column + 1;
    out << ": invalid YAML: " << e.msg;
    return absl::InvalidArgumentError(out.str());
  }
  Config config;
  config.source = source_name;
  try {
    if (root.IsNull()) return p.Error(root, "", "the file is empty");
    RETURN_IF_ERROR(
        p.CheckMap(root, "",
                   {"listen", "tls", "data_dir", "namespaces", "tokens", "auth", "tracing",
                    "supervision", "limits", "drain_timeout", "plugin_dirs"}));
    if (const auto& n = root["listen"]) {
      ASSIGN_OR_RETURN(config.listen, p.String(n, "listen"));
    }
    if (std::string why = AddressProblem(config.listen, /*listening=*/true); !why.empty()) {
      return p.Error(root["listen"], "listen", why);
    }
    if (const auto& tls = root["tls"]) {
      RETURN_IF_ERROR(p.CheckMap(tls, "tls", {"cert_file", "key_file"}));
      if (!tls["cert_file"] || !tls["key_file"]) {
        return p.Error(tls, "tls", "set both 'cert_file' and 'key_file'");
      }
      ASSIGN_OR_RETURN(config.tls_cert_file, p.String(tls["cert_file"], "tls.cert_file"));
      ASSIGN_OR_RETURN(config.tls_key_file, p.String(tls["key_file"], "tls.key_file"));
    }
    if (const auto& n = root["data_dir"]) {
      ASSIGN_OR_RETURN(config.data_dir, p.String(n, "data_dir"));
    }
    if (const auto& n = root["drain_timeout"]) {
      ASSIGN_OR_RETURN(config.drain_timeout, p.Millis(n, "drain_timeout"));
    }
    if (const auto& n = root["plugin_dirs"]) {
      if (!n.IsSequence()) return p.Error(n, "plugin_dirs", "expected a list of directories");
      for (const auto& d : n) {
        ASSIGN_OR_RETURN(std::string s, p.String(d, "plugin_dirs"));
        config.plugin_dirs.push_back(std::move(s));
      }
    }
    const YAML::Node& nss = root["namespaces"];
    if (!nss) {
      return p.Error(root, "namespaces", "missing: list at least one namespace and its plugin");
    }
    if (!nss.IsMap() || nss.size() == 0) {
      return p.Error(nss, "namespaces", "expected a mapping of namespace name: {plugin: ...}");
    }
    for (const auto& kv : nss) {
      ASSIGN_OR_RETURN(std::string name, p.String(kv.first, "namespaces"));
      std::string key = "namespaces." + name;
      if (!ValidNamespaceName(name)) {
        return p.Error(kv.first, key,
                       "namespace names use letters, digits, '-', '_' and '.' (1-128 chars)");
      }
      RETURN_IF_ERROR(p.CheckMap(kv.second, key, {"plugin", "slow"}));
      if (!kv.second["plugin"]) return p.Error(kv.second, key, "missing 'plugin'");
      NamespaceConfig nc;
      nc.name = name;
      RETURN_IF_ERROR(ParsePlugin(p, kv.second["plugin"], key + ".plugin", nc.plugin));
      if (const auto& sl = kv.second["slow"]) {
        ASSIGN_OR_RETURN(nc.slow, p.Millis(sl, key + ".slow"));
      }
      config.namespaces.push_back(std::move(nc));
    }
    if (const auto& n = root["tokens"]) RETURN_IF_ERROR(ParseTokens(p, n, config));
    for (size_t i = 0; i < config.tokens.size(); ++i) {
      for (const auto& [ns, r] : config.tokens[i].rights) {
        bool known = ns == "*";
        for (const auto& nc : config.namespaces) known = known || nc.name == ns;
        if (!known) {
          return p.Error(root["tokens"][i]["rights"][ns],
                         "tokens[" + std::to_string(i) + "].rights." + ns,
                         "no such namespace (define it under 'namespaces' or use '*')");
        }
      }
    }
    if (const auto& a = root["auth"]) {
      RETURN_IF_ERROR(p.CheckMap(a, "auth", {"mode"}));
      if (const auto& m = a["mode"]) {
        ASSIGN_OR_RETURN(std::string mode, p.String(m, "auth.mode"));
        if (mode == "auto") {
          config.auth_mode = AuthMode::kAuto;
        } else if (mode == "required") {
          config.auth_mode = AuthMode::kRequired;
        } else if (mode == "none") {
          config.auth_mode = AuthMode::kNone;
        } else {
          return p.Error(m, "auth.mode", "expected auto, required or none (got '" + mode + "')");
        }
      }
    }
    if (config.auth_mode == AuthMode::kRequired && config.tokens.empty()) {
      return p.Error(root["auth"], "auth.mode", "'required' needs at least one entry in 'tokens'");
    }
    if (const auto& n = root["tracing"]) RETURN_IF_ERROR(ParseTracing(p, n, config.tracing));
    if (const auto& n = root["supervision"]) {
      RETURN_IF_ERROR(ParseSupervision(p, n, config.supervision));
    }
    if (const auto& n = root["limits"]) RETURN_IF_ERROR(ParseLimits(p, n, config.limits));
  } catch (const YAML::Exception& e) {
    // yaml-cpp throws on some malformed documents during access.
    std::ostringstream out;
    out << source_name;
    if (!e.mark.is_null()) out << ":" << e.mark.line + 1 << ":" << e.mark.column + 1;
    out << ": " << e.msg;
    return absl::InvalidArgumentError(out.str());
  }
  return config;
}

absl::StatusOr<Config> LoadConfigFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(path + ": cannot open the configuration file");
  std::ostringstream text;
  text << in.rdbuf();
  return ParseConfig(text.str(), path);
}

std::string AdaptiveConfig::SamplerArg(
    std::optional<std::chrono::milliseconds> slow_override) const {
  char ratio_text[32];
  std::snprintf(ratio_text, sizeof(ratio_text), "%.10g", ratio);
  return std::string("ratio=") + ratio_text +
         ",slow_ms=" + std::to_string(slow_override.value_or(slow).count()) +
         ",buffer_mb=" + std::to_string(buffer_mb);
}

Config EmbeddedDefaultConfig(const std::string& data_dir) {
  Config c;
  c.source = "embedded default";
  c.data_dir = data_dir;
  NamespaceConfig ns;
  ns.name = "default";
  ns.plugin.command = {"prism-plugin-sqlite"};
  c.namespaces.push_back(std::move(ns));
  return c;
}

std::string AddressProblem(std::string_view a, bool listening) {
  if (a.empty()) return "the address is empty";
  for (char c : a) {
    if (std::isspace(static_cast<unsigned char>(c)) ||
        std::iscntrl(static_cast<unsigned char>(c))) {
      return "the address contains whitespace or control characters";
    }
  }
  for (std::string_view scheme : {"unix:", "unix-abstract:"}) {
    if (a.rfind(scheme, 0) == 0) {
      return a.size() > scheme.size() ? "" : "no path after '" + std::string(scheme) + "'";
    }
  }
  for (std::string_view scheme : {"dns:///", "dns:", "ipv4:", "ipv6:"}) {
    if (a.rfind(scheme, 0) == 0) {
      a.remove_prefix(scheme.size());
      break;
    }
  }
  std::string_view port;
  if (!a.empty() && a.front() == '[') {
    size_t close = a.find(']');
    if (close == std::string_view::npos || close + 1 >= a.size() || a[close + 1] != ':') {
      return "expected [IPv6]:PORT";
    }
    port = a.substr(close + 2);
  } else {
    size_t colon = a.rfind(':');
    if (colon == std::string_view::npos || a.find(':') != colon) {
      return "expected HOST:PORT, [IPv6]:PORT or unix:PATH";
    }
    if (colon == 0) return "no host before the port";
    port = a.substr(colon + 1);
  }
  int n = -1;
  auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), n);
  if (port.empty() || ec != std::errc() || end != port.data() + port.size() || n > 65535 ||
      n < (listening ? 0 : 1)) {
    return "the port must be a number from " + std::string(listening ? "0" : "1") +
           " to 65535, got '" + std::string(port) + "'";
  }
  return "";
}

absl::Status FinalizeConfig(Config& config) {
  // The one data-directory rule, shared with the trace file, the plugins and the CLI.
  if (config.data_dir.empty()) config.data_dir = prism::tracing::DefaultDataDir();
  if (config.tls_cert_file.empty() != config.tls_key_file.empty()) {
    return absl::InvalidArgumentError("TLS needs both a certificate and a key file");
  }
  // A launched sqlite plugin without an explicit data directory keeps its
  // files in the proxy's data directory.
  for (auto& ns : config.namespaces) {
    if (!ns.plugin.launched()) continue;
    const std::string& exe = ns.plugin.command[0];
    bool is_sqlite = exe.size() >= 6 && exe.substr(exe.size() - 6) == "sqlite";
    bool has_dir = ns.plugin.settings.count("data-dir") > 0;
    for (const auto& a : ns.plugin.command) has_dir = has_dir || a.rfind("--data-dir", 0) == 0;
    if (is_sqlite && !has_dir) ns.plugin.settings["data-dir"] = config.data_dir;
  }
  return absl::OkStatus();
}

}  // namespace prism::proxy
