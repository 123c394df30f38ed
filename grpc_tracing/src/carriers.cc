#include "prism/grpc_tracing/carriers.h"

namespace prism::grpc_tracing {

std::optional<std::string> ServerMetadataCarrier::Get(std::string_view key) const {
  std::optional<std::string> out;
  auto range = md_.equal_range(grpc::string_ref(key.data(), key.size()));
  for (auto it = range.first; it != range.second; ++it) {
    if (out) {
      out->push_back(',');
      out->append(it->second.data(), it->second.size());
    } else {
      out.emplace(it->second.data(), it->second.size());
    }
  }
  return out;
}

std::optional<std::string> SendMetadataCarrier::Get(std::string_view key) const {
  std::optional<std::string> out;
  auto range = md_.equal_range(std::string(key));
  for (auto it = range.first; it != range.second; ++it) {
    if (out) {
      out->push_back(',');
      out->append(it->second);
    } else {
      out = it->second;
    }
  }
  return out;
}

void SendMetadataCarrier::Set(std::string_view key, std::string_view value) {
  std::string k(key);
  md_.erase(k);
  md_.emplace(std::move(k), std::string(value));
}

}  // namespace prism::grpc_tracing
