#pragma once
// The redis KeyValue service (sync API: handlers block on the connection
// pool and on Redis, on gRPC's sync thread pool). Each pooled connection is a
// hiredis context in non-blocking mode driven by poll(), so every wait —
// connect, write, read — ends at the call's deadline.
//
// Spans per call: plugin SERVER span (interceptor) -> pool.acquire -> one
// database CLIENT span per command ("GET", "MSET", ...); a call that has to
// (re)connect first also has a "redis.connect" CLIENT span.

#include <hiredis/hiredis.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "prism/plugin/pool.h"
#include "prism/tracing/tracer.h"
#include "prism/v1/kv.grpc.pb.h"

namespace prism::redis {

struct RedisOptions {
  std::string host = "127.0.0.1";  // an IP address or a name (its first address is used)
  int port = 6379;
  int db = 0;            // SELECTed on every connection when not 0
  std::string user;      // ACL user (Redis 6+); empty: AUTH with the password only
  std::string password;  // empty: no AUTH
  std::string client_name = "prism-plugin-redis";  // CLIENT SETNAME; empty: not sent
  int pool_size = 4;
  int connect_timeout_ms = 1000;  // upper bound of one connect (and the call's deadline)
  int command_timeout_ms = 5000;  // for calls without a deadline
  prism::tracing::Tracer tracer;
};

// One connection; null `ctx` when not connected (reconnected on next use).
class Connection {
 public:
  ~Connection();
  void Drop();
  redisContext* ctx = nullptr;
};

class RedisService final : public prism::v1::KeyValue::Service {
 public:
  // Builds the pool and tries to connect every connection. A server that is
  // not reachable is not an error (calls answer UNAVAILABLE until it is);
  // one that refuses the settings (AUTH, SELECT) is, with Redis's reason.
  static absl::StatusOr<std::unique_ptr<RedisService>> Open(RedisOptions options);

  grpc::Status Get(grpc::ServerContext*, const prism::v1::GetRequest*,
                   prism::v1::GetResponse*) override;
  grpc::Status Set(grpc::ServerContext*, const prism::v1::SetRequest*,
                   prism::v1::SetResponse*) override;
  grpc::Status Delete(grpc::ServerContext*, const prism::v1::DeleteRequest*,
                      prism::v1::DeleteResponse*) override;
  grpc::Status Exists(grpc::ServerContext*, const prism::v1::ExistsRequest*,
                      prism::v1::ExistsResponse*) override;
  grpc::Status BatchGet(grpc::ServerContext*, const prism::v1::BatchGetRequest*,
                        prism::v1::BatchGetResponse*) override;
  grpc::Status BatchSet(grpc::ServerContext*, const prism::v1::BatchSetRequest*,
                        prism::v1::BatchSetResponse*) override;
  grpc::Status BatchDelete(grpc::ServerContext*, const prism::v1::BatchDeleteRequest*,
                           prism::v1::BatchDeleteResponse*) override;

  prism::plugin::Pool<Connection>& pool() { return *pool_; }
  // Connections made so far (startup included): each sends CLIENT SETNAME once.
  int64_t connects() const { return connects_.load(); }

  struct Call;  // one command of one call (redis_service.cc)

 private:
  RedisService() = default;
  absl::Status Connect(Connection& c, std::chrono::steady_clock::time_point deadline,
                       const prism::tracing::SpanContext& parent);
  grpc::Status Run(Call& call);
  template <typename Request, typename Fill>
  grpc::Status Serve(grpc::ServerContext* ctx, const Request& req, Fill&& fill);

  RedisOptions o_;
  std::string db_text_;  // db.namespace
  std::unique_ptr<prism::plugin::Pool<Connection>> pool_;
  std::atomic<int64_t> connects_{0};
};

}  // namespace prism::redis
