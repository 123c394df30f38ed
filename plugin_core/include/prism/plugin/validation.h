#pragma once
// Request validation shared by every plugin, so all backends reject the
// same inputs with the same INVALID_ARGUMENT messages (docs/api.md, "Limits").

#include <grpcpp/server_context.h>
#include <grpcpp/support/status.h>

#include <chrono>
#include <cstddef>
#include <string_view>

#include "prism/plugin/limits.h"
#include "prism/v1/kv.pb.h"

namespace prism::plugin {

grpc::Status ValidateNamespace(std::string_view ns);
grpc::Status ValidateKey(std::string_view key);
grpc::Status ValidateValue(std::string_view value);

grpc::Status Validate(const prism::v1::GetRequest& r);
grpc::Status Validate(const prism::v1::SetRequest& r);
grpc::Status Validate(const prism::v1::DeleteRequest& r);
grpc::Status Validate(const prism::v1::ExistsRequest& r);
grpc::Status Validate(const prism::v1::BatchGetRequest& r);
grpc::Status Validate(const prism::v1::BatchSetRequest& r);
grpc::Status Validate(const prism::v1::BatchDeleteRequest& r);

// DEADLINE_EXCEEDED when the call's deadline has passed (or it was
// cancelled: CANCELLED), else OK.
grpc::Status CheckDeadline(const grpc::ServerContextBase& ctx);

}  // namespace prism::plugin
