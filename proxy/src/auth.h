#pragma once
// Bearer-token authentication and per-namespace authorization. Tokens are
// known only by their SHA-256; the token itself is never stored or logged.

#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "config.h"

namespace prism::proxy {

// "read", "write", "read,write" or "none".
std::string RightsToString(uint8_t rights);
// RightsToString(rights), made once per value: for every call's span.
const std::string& RightsName(uint8_t rights);

// Lower-case hex SHA-256 of `data` (OpenSSL).
std::string Sha256Hex(std::string_view data);
// 32 random bytes from OpenSSL's CSPRNG, hex encoded ("prism_" prefixed).
std::string GenerateToken();

// Extracts the token from an `authorization` header value: "Bearer <token>"
// (scheme case-insensitive). nullopt when the header is not a bearer token.
std::optional<std::string_view> ParseBearer(std::string_view header);

// A caller's x-request-id is kept when it is 1-128 visible ASCII
// characters (docs/config.md, "Request metadata"); otherwise one is generated.
inline constexpr size_t kMaxRequestIdBytes = 128;
bool ValidRequestId(std::string_view id);

// True for literal 127.0.0.0/8 and ::1 addresses (also ::ffff:127.x.y.z),
// `localhost` and unix: addresses. Any other host name is not loopback, even
// one that starts with "127." (it could resolve anywhere).
bool IsLoopbackListenAddress(std::string_view address);

struct Principal {
  int index = -1;  // into the token list; -1 = anonymous
  std::string_view name;
};

class Authorizer {
 public:
  // `anonymous_rights`: rights of a caller that sends no token (every right
  // when auth is off or the proxy listens on loopback only without tokens).
  Authorizer(std::vector<TokenConfig> tokens, bool anonymous_allowed);

  // UNAUTHENTICATED when the header is missing (and anonymous callers are not
  // allowed), not a bearer token, or names an unknown token.
  absl::StatusOr<Principal> Authenticate(std::optional<std::string_view> authorization) const;
  // PERMISSION_DENIED when the principal lacks `needed` on `ns`.
  absl::Status Authorize(const Principal& who, std::string_view ns, uint8_t needed) const;

  bool anonymous_allowed() const { return anonymous_allowed_; }
  size_t token_count() const { return tokens_.size(); }

 private:
  std::vector<TokenConfig> tokens_;
  std::unordered_map<std::string, int> by_hash_;
  bool anonymous_allowed_;
};

}  // namespace prism::proxy
