#pragma once
// The postgres KeyValue service (sync gRPC API: handlers block on the pool
// and on the server's answer, on gRPC's sync thread pool).
//
// Spans per call: plugin SERVER span (interceptor) -> pool.acquire, then one
// database CLIENT span per call ("SELECT kv", "INSERT kv", "BATCH INSERT kv",
// ...). With the comment on, each statement a sampled call sends carries
// that span's traceparent as a sqlcommenter comment (sqlcommenter.h).

#include <libpq-fe.h>

#include <chrono>
#include <memory>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "prism/plugin/kv_methods.h"
#include "prism/plugin/pool.h"
#include "prism/tracing/tracer.h"
#include "prism/v1/kv.grpc.pb.h"

namespace prism::postgres {

// How statements are sent (docs/plugins.md, "postgres": why).
enum class StatementMode {
  // Named prepared statements (prepared once per connection) when no comment
  // goes with the statement; the unnamed statement (PQexecParams: parse,
  // bind, execute in one round trip) with a comment. The default.
  kAuto,
  // Always the unnamed statement (PQexecParams), comment or not.
  kUnnamed,
  // Always prepared: a commented statement is prepared anew for that call
  // (its text is unique), as a driver that prepares everything would. For
  // the benchmark: what the comment costs with prepared statements.
  kPrepareEach,
};

struct PgOptions {
  std::string conninfo;  // libpq connection string or URI; "" = PG* environment variables
  std::string table = "kv";
  int pool_size = 4;
  int acquire_timeout_ms = 5000;
  int connect_timeout_ms = 5000;
  bool sqlcommenter = true;
  StatementMode statements = StatementMode::kAuto;
  prism::tracing::Tracer tracer;
};

// One server connection; reconnected when it broke.
struct PgConn {
  PGconn* conn = nullptr;
  unsigned prepared = 0;              // bit per statement prepared on this connection
  int64_t statement_timeout_ms = -1;  // as last SET on this connection (-1: unknown)
  PgConn() = default;
  PgConn(const PgConn&) = delete;
  PgConn& operator=(const PgConn&) = delete;
  ~PgConn();
  void Drop();
};

class PgService final : public prism::v1::KeyValue::Service {
 public:
  // Connects once (within connect-timeout-ms), creates the table if missing
  // and builds the pool (the other connections open on first use). Errors
  // name the server and PostgreSQL's reason.
  static absl::StatusOr<std::unique_ptr<PgService>> Open(PgOptions options);

  PRISM_KV_SYNC_METHODS();

  prism::plugin::Pool<PgConn>& pool() { return *pool_; }
  const std::string& server_address() const { return server_address_; }
  int server_port() const { return server_port_; }
  const std::string& db_namespace() const { return database_; }  // "{database}|{schema}"

  // The statements, as recorded in db.query.text (placeholders, never values).
  enum Stmt { kGet, kSet, kDelete, kExists, kStmtCount };
  const std::string& sql(Stmt s) const { return sql_[s]; }

  struct Call;  // one call's state (pg_service.cc)

 private:
  PgService() = default;
  // One statement for one key (Get, Set, Delete, Exists): `use(result,
  // span)` reads the answer.
  template <typename Req, typename F>
  grpc::Status Single(grpc::ServerContext* ctx, const Req* req, std::string_view operation, Stmt s,
                      const char* const* values, const int* lengths, F&& use);
  absl::Status EnsureConnected(PgConn& c, std::chrono::system_clock::time_point deadline,
                               const prism::tracing::SpanContext& parent);
  PgOptions options_;
  std::string server_address_, database_;
  int server_port_ = 0;
  std::string sql_[kStmtCount];
  std::unique_ptr<prism::plugin::Pool<PgConn>> pool_;
};

// Whether `name` can be the table: a lower-case SQL identifier
// ([a-z_][a-z0-9_]*, at most 63 bytes), optionally schema-qualified
// ("schema.table"); it is written into the statements unquoted.
bool IsValidTableName(const std::string& name);

}  // namespace prism::postgres
