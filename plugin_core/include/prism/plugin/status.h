#pragma once
// absl::Status <-> grpc::Status (the codes are the same numbers).

#include <grpcpp/support/status.h>

#include "absl/status/status.h"

namespace prism::plugin {

inline grpc::Status ToGrpcStatus(const absl::Status& s) {
  if (s.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(s.code()), std::string(s.message()));
}

}  // namespace prism::plugin
