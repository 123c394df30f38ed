#pragma once
// One-line KeyValue calls with a deadline, for the tests of this directory.

#include <grpcpp/client_context.h>

#include <chrono>
#include <memory>
#include <string>

#include "prism/v1/kv.grpc.pb.h"

namespace prism::redis::testing {

inline std::unique_ptr<grpc::ClientContext> CallContext(std::chrono::milliseconds deadline) {
  auto c = std::make_unique<grpc::ClientContext>();
  c->set_deadline(std::chrono::system_clock::now() + deadline);
  return c;
}

inline grpc::Status KvSet(prism::v1::KeyValue::Stub& stub, const std::string& ns,
                          const std::string& key, const std::string& value,
                          std::chrono::milliseconds deadline = std::chrono::seconds(5)) {
  prism::v1::SetRequest req;
  req.set_namespace_(ns);
  req.set_key(key);
  req.set_value(value);
  prism::v1::SetResponse resp;
  return stub.Set(CallContext(deadline).get(), req, &resp);
}

inline grpc::Status KvGet(prism::v1::KeyValue::Stub& stub, const std::string& ns,
                          const std::string& key, prism::v1::GetResponse* resp,
                          std::chrono::milliseconds deadline = std::chrono::seconds(5)) {
  prism::v1::GetRequest req;
  req.set_namespace_(ns);
  req.set_key(key);
  return stub.Get(CallContext(deadline).get(), req, resp);
}

}  // namespace prism::redis::testing
