// Fuzzes the metadata the proxy reads before forwarding: the authorization
// header (ParseBearer, Authenticate, Authorize), x-request-id, and the W3C
// propagation headers (traceparent, tracestate, baggage) through the
// propagator the proxy uses. The input is split at '\n' into those values.

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "auth.h"
#include "prism/tracing/carriers.h"
#include "prism/tracing/propagation.h"

namespace pp = prism::proxy;
namespace pt = prism::tracing;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);
  std::vector<std::string_view> v;
  while (v.size() < 4) {
    size_t nl = input.find('\n');
    v.push_back(input.substr(0, nl));
    if (nl == std::string_view::npos) {
      input = {};
    } else {
      input.remove_prefix(nl + 1);
    }
  }
  v.push_back(input);  // baggage: the rest
  const std::string_view authorization = v[0], request_id = v[1];

  static const pp::Authorizer auth(
      {pp::TokenConfig{"app", pp::Sha256Hex("secret"), {{"orders", pp::kRead}}}},
      /*anonymous_allowed=*/false);
  auto who = auth.Authenticate(authorization);
  auto token = pp::ParseBearer(authorization);
  if (who.ok() != (token && *token == "secret")) abort();
  if (token && (token->empty() || token->front() == ' ' || token->back() == ' ')) abort();
  if (who.ok()) {
    if (!auth.Authorize(*who, "orders", pp::kRead).ok()) abort();
    if (auth.Authorize(*who, request_id, pp::kWrite).ok()) abort();
  } else if (who.status().message().empty()) {
    abort();
  }

  if (pp::ValidRequestId(request_id)) {
    if (request_id.empty() || request_id.size() > pp::kMaxRequestIdBytes) abort();
    for (char c : request_id) {
      if (c < 0x21 || c > 0x7e) abort();
    }
  }

  static const auto propagator = pt::PropagatorFromEnvironment();
  std::map<std::string, std::string> headers;
  pt::MapCarrier carrier(headers);
  carrier.Set("traceparent", v[2]);
  carrier.Set("tracestate", v[3]);
  carrier.Set("baggage", v[4]);
  pt::Context ctx = propagator->Extract(carrier, pt::Context());
  if (ctx.span_context().IsValid() && !ctx.span_context().IsRemote()) abort();
  return 0;
}
