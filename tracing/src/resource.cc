#include "prism/tracing/resource.h"

#include <limits.h>
#include <unistd.h>

#include <fstream>

#include "prism/tracing/diagnostics.h"
#include "prism/tracing/env.h"
#include "prism/tracing/version.h"

namespace prism::tracing {
namespace {

std::string ExecutableName() {
  char buf[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", buf, sizeof(buf) - 1);
  if (n <= 0) return "unknown";
  std::string path(buf, static_cast<size_t>(n));
  auto slash = path.rfind('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

std::string HostName() {
  char buf[256] = {0};
  if (gethostname(buf, sizeof(buf) - 1) != 0) return {};
  return buf;
}

int HexDigit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::optional<std::string> PercentDecode(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '%') {
      out.push_back(s[i]);
      continue;
    }
    if (i + 2 >= s.size()) return std::nullopt;
    int hi = HexDigit(s[i + 1]), lo = HexDigit(s[i + 2]);
    if (hi < 0 || lo < 0) return std::nullopt;
    out.push_back(static_cast<char>((hi << 4) | lo));
    i += 2;
  }
  return out;
}

void Put(Attributes& attrs, AttributeKey key, AttributeValue value) {
  for (auto& kv : attrs) {
    if (kv.key == key) {
      kv.value = std::move(value);
      return;
    }
  }
  attrs.push_back(KeyValue{std::move(key), std::move(value)});
}

}  // namespace

std::optional<Attributes> ParseResourceAttributes(std::string_view text) {
  Attributes out;
  size_t pos = 0;
  while (pos <= text.size()) {
    size_t comma = text.find(',', pos);
    if (comma == std::string_view::npos) comma = text.size();
    std::string_view member = text.substr(pos, comma - pos);
    pos = comma + 1;
    std::string trimmed = env::Trim(member);
    if (trimmed.empty()) {
      if (comma == text.size()) break;
      continue;
    }
    size_t eq = trimmed.find('=');
    if (eq == std::string::npos) return std::nullopt;
    auto key = PercentDecode(env::Trim(std::string_view(trimmed).substr(0, eq)));
    auto value = PercentDecode(env::Trim(std::string_view(trimmed).substr(eq + 1)));
    if (!key || !value || key->empty()) return std::nullopt;
    Put(out, std::move(*key), std::move(*value));
    if (comma == text.size()) break;
  }
  return out;
}

Resource Resource::FromEnvironment(std::string_view service_name) {
  Attributes attrs;
  attrs.push_back({"service.name", "unknown_service:" + ExecutableName()});
  attrs.push_back({"telemetry.sdk.name", std::string(kSdkName)});
  attrs.push_back({"telemetry.sdk.language", std::string("cpp")});
  attrs.push_back({"telemetry.sdk.version", std::string(kSdkVersion)});
  if (std::string host = HostName(); !host.empty()) attrs.push_back({"host.name", host});
  attrs.push_back({"process.pid", static_cast<int64_t>(getpid())});
  if (!service_name.empty()) Put(attrs, "service.name", std::string(service_name));
  if (auto text = env::Get("OTEL_RESOURCE_ATTRIBUTES")) {
    if (auto parsed = ParseResourceAttributes(*text)) {
      for (auto& kv : *parsed) Put(attrs, std::move(kv.key), std::move(kv.value));
    } else {
      internal::Log(internal::LogLevel::kWarn,
                    "OTEL_RESOURCE_ATTRIBUTES is malformed (want k=v,k2=v2, percent-encoded); "
                    "ignored");
    }
  }
  if (auto name = env::Get("OTEL_SERVICE_NAME")) Put(attrs, "service.name", *name);
  return Resource(std::move(attrs));
}

Resource Resource::Merge(const Resource& updating) const {
  Attributes attrs = attributes_;
  for (const auto& kv : updating.attributes_) Put(attrs, kv.key, kv.value);
  std::string schema = updating.schema_url_.empty() ? schema_url_ : updating.schema_url_;
  return Resource(std::move(attrs), std::move(schema));
}

const AttributeValue* Resource::Get(std::string_view key) const {
  for (const auto& kv : attributes_) {
    if (kv.key == key) return &kv.value;
  }
  return nullptr;
}

}  // namespace prism::tracing
