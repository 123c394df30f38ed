#include "auth.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include <array>
#include <cctype>
#include <utility>

#include "prism/tracing/ids.h"

namespace prism::proxy {

std::string RightsToString(uint8_t rights) {
  std::string out;
  for (auto [bit, name] : {std::pair<uint8_t, const char*>{kRead, "read"},
                           {kWrite, "write"},
                           {kPublish, "publish"},
                           {kSubscribe, "subscribe"}}) {
    if (!(rights & bit)) continue;
    if (!out.empty()) out += ",";
    out += name;
  }
  return out.empty() ? "none" : out;
}

const std::string& RightsName(uint8_t rights) {
  static const auto* names = [] {
    auto* a = new std::array<std::string, 256>;  // never destroyed: read by exiting threads
    for (size_t i = 0; i < a->size(); ++i) (*a)[i] = RightsToString(static_cast<uint8_t>(i));
    return a;
  }();
  return (*names)[rights];
}

std::string Sha256Hex(std::string_view data) {
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(data.data()), data.size(), digest);
  return prism::tracing::hex::Encode(digest, sizeof digest);
}

std::string GenerateToken() {
  unsigned char bytes[32];
  if (RAND_bytes(bytes, sizeof bytes) != 1) return {};
  return "prism_" + prism::tracing::hex::Encode(bytes, sizeof bytes);
}

std::optional<std::string_view> ParseBearer(std::string_view header) {
  constexpr std::string_view kScheme = "bearer";
  if (header.size() <= kScheme.size() + 1) return std::nullopt;
  for (size_t i = 0; i < kScheme.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(header[i])) != kScheme[i]) return std::nullopt;
  }
  if (header[kScheme.size()] != ' ') return std::nullopt;
  std::string_view token = header.substr(kScheme.size() + 1);
  while (!token.empty() && token.front() == ' ') token.remove_prefix(1);
  while (!token.empty() && token.back() == ' ') token.remove_suffix(1);
  if (token.empty()) return std::nullopt;
  return token;
}

bool ValidRequestId(std::string_view id) {
  if (id.empty() || id.size() > kMaxRequestIdBytes) return false;
  for (char c : id) {
    if (c < 0x21 || c > 0x7e) return false;
  }
  return true;
}

bool IsLoopbackListenAddress(std::string_view a) {
  if (IsUnixSocketAddress(a)) return true;
  if (a.rfind("dns:///", 0) == 0) {
    a.remove_prefix(7);
  } else if (a.rfind("dns:", 0) == 0) {
    a.remove_prefix(4);
  }
  if (a.rfind("ipv4:", 0) == 0) a.remove_prefix(5);
  if (a.rfind("ipv6:", 0) == 0) a.remove_prefix(5);
  std::string_view host = a;
  if (!host.empty() && host.front() == '[') {
    auto close = host.find(']');
    if (close == std::string_view::npos) return false;
    host = host.substr(1, close - 1);
  } else {
    auto colon = host.rfind(':');
    if (colon != std::string_view::npos) host = host.substr(0, colon);
  }
  if (host == "localhost") return true;
  // Only literal addresses: a host name such as 127.evil.example.com or
  // 127.0.0.1.nip.io resolves to whatever its owner wants, and a listener
  // judged loopback runs without tokens in auth.mode auto.
  const std::string literal(host);
  in_addr v4;
  if (inet_pton(AF_INET, literal.c_str(), &v4) == 1) return (ntohl(v4.s_addr) >> 24) == 127;
  in6_addr v6;
  if (inet_pton(AF_INET6, literal.c_str(), &v6) == 1) {
    if (IN6_IS_ADDR_LOOPBACK(&v6)) return true;
    // ::ffff:127.x.y.z, the IPv4-mapped form of a loopback address.
    return IN6_IS_ADDR_V4MAPPED(&v6) && v6.s6_addr[12] == 127;
  }
  return false;
}

Authorizer::Authorizer(std::vector<TokenConfig> tokens, bool anonymous_allowed)
    : tokens_(std::move(tokens)), anonymous_allowed_(anonymous_allowed) {
  for (size_t i = 0; i < tokens_.size(); ++i) by_hash_[tokens_[i].sha256] = static_cast<int>(i);
}

absl::StatusOr<Principal> Authorizer::Authenticate(
    std::optional<std::string_view> authorization) const {
  if (!authorization) {
    if (anonymous_allowed_) return Principal{-1, "anonymous"};
    return absl::UnauthenticatedError(
        "missing access token: send metadata 'authorization: Bearer <token>' "
        "(prism CLI: --token or PRISM_TOKEN)");
  }
  auto token = ParseBearer(*authorization);
  if (!token) {
    return absl::UnauthenticatedError(
        "malformed authorization metadata: expected 'Bearer <token>'");
  }
  auto it = by_hash_.find(Sha256Hex(*token));
  if (it == by_hash_.end()) return absl::UnauthenticatedError("unknown access token");
  return Principal{it->second, tokens_[it->second].name};
}

absl::Status Authorizer::Authorize(const Principal& who, std::string_view ns,
                                   uint8_t needed) const {
  if (who.index < 0) return absl::OkStatus();  // anonymous callers exist only when allowed
  const auto& rights = tokens_[who.index].rights;
  uint8_t have = kNone;
  if (auto it = rights.find(std::string(ns)); it != rights.end()) {
    have = it->second;
  } else if (auto all = rights.find("*"); all != rights.end()) {
    have = all->second;
  }
  if ((have & needed) == needed) return absl::OkStatus();
  return absl::PermissionDeniedError("token '" + tokens_[who.index].name + "' has no " +
                                     RightsToString(needed) + " right on namespace '" +
                                     std::string(ns) + "'");
}

}  // namespace prism::proxy
