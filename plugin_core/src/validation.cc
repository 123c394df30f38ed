#include "prism/plugin/validation.h"

#include <string>

namespace prism::plugin {
namespace {

grpc::Status Invalid(std::string message) {
  return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, std::move(message));
}

grpc::Status CheckKeyAt(std::string_view key, std::string_view field) {
  if (key.empty()) return Invalid(std::string(field) + " must not be empty");
  if (key.size() > kMaxKeyBytes) {
    return Invalid(std::string(field) + " is " + std::to_string(key.size()) +
                   " bytes; the limit is " + std::to_string(kMaxKeyBytes));
  }
  return grpc::Status::OK;
}

grpc::Status CheckValueAt(std::string_view value, std::string_view field) {
  if (value.size() > kMaxValueBytes) {
    return Invalid(std::string(field) + " is " + std::to_string(value.size()) +
                   " bytes; the limit is " + std::to_string(kMaxValueBytes));
  }
  return grpc::Status::OK;
}

grpc::Status CheckBatch(size_t n, std::string_view field) {
  if (n == 0) return Invalid(std::string(field) + " must not be empty");
  if (n > kMaxBatchItems) {
    return Invalid(std::string(field) + " has " + std::to_string(n) + " entries; the limit is " +
                   std::to_string(kMaxBatchItems));
  }
  return grpc::Status::OK;
}

template <typename Keys>
grpc::Status CheckKeys(const Keys& keys) {
  if (auto st = CheckBatch(keys.size(), "keys"); !st.ok()) return st;
  for (int i = 0; i < keys.size(); ++i) {
    if (auto st = CheckKeyAt(keys[i], "keys[" + std::to_string(i) + "]"); !st.ok()) return st;
  }
  return grpc::Status::OK;
}

}  // namespace

grpc::Status ValidateNamespace(std::string_view ns) {
  if (ns.empty()) return Invalid("namespace must not be empty");
  if (ns.size() > kMaxNamespaceBytes) {
    return Invalid("namespace is " + std::to_string(ns.size()) + " bytes; the limit is " +
                   std::to_string(kMaxNamespaceBytes));
  }
  return grpc::Status::OK;
}

grpc::Status ValidateKey(std::string_view key) { return CheckKeyAt(key, "key"); }
grpc::Status ValidateValue(std::string_view value) { return CheckValueAt(value, "value"); }

grpc::Status Validate(const prism::v1::GetRequest& r) {
  if (auto st = ValidateNamespace(r.namespace_()); !st.ok()) return st;
  return ValidateKey(r.key());
}
grpc::Status Validate(const prism::v1::SetRequest& r) {
  if (auto st = ValidateNamespace(r.namespace_()); !st.ok()) return st;
  if (auto st = ValidateKey(r.key()); !st.ok()) return st;
  return ValidateValue(r.value());
}
grpc::Status Validate(const prism::v1::DeleteRequest& r) {
  if (auto st = ValidateNamespace(r.namespace_()); !st.ok()) return st;
  return ValidateKey(r.key());
}
grpc::Status Validate(const prism::v1::ExistsRequest& r) {
  if (auto st = ValidateNamespace(r.namespace_()); !st.ok()) return st;
  return ValidateKey(r.key());
}
grpc::Status Validate(const prism::v1::BatchGetRequest& r) {
  if (auto st = ValidateNamespace(r.namespace_()); !st.ok()) return st;
  return CheckKeys(r.keys());
}
grpc::Status Validate(const prism::v1::BatchSetRequest& r) {
  if (auto st = ValidateNamespace(r.namespace_()); !st.ok()) return st;
  if (auto st = CheckBatch(r.items_size(), "items"); !st.ok()) return st;
  for (int i = 0; i < r.items_size(); ++i) {
    std::string at = "items[" + std::to_string(i) + "]";
    if (auto st = CheckKeyAt(r.items(i).key(), at + ".key"); !st.ok()) return st;
    if (auto st = CheckValueAt(r.items(i).value(), at + ".value"); !st.ok()) return st;
  }
  return grpc::Status::OK;
}
grpc::Status Validate(const prism::v1::BatchDeleteRequest& r) {
  if (auto st = ValidateNamespace(r.namespace_()); !st.ok()) return st;
  return CheckKeys(r.keys());
}

grpc::Status CheckDeadline(const grpc::ServerContextBase& ctx) {
  if (ctx.deadline() <= std::chrono::system_clock::now()) {
    return grpc::Status(grpc::StatusCode::DEADLINE_EXCEEDED, "deadline exceeded");
  }
  return grpc::Status::OK;
}

}  // namespace prism::plugin
