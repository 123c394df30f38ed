#pragma once
// The sqlite KeyValue service (sync API: handlers block on the connection
// pool and on SQLite, on gRPC's sync thread pool). One file in the data
// directory, WAL mode, a pool of connections with prepared statements.
//
// Spans per call: plugin SERVER span (interceptor) -> pool.acquire ->
// one database CLIENT span per statement ("SELECT kv", "BATCH INSERT kv", ...).

#include <sqlite3.h>

#include <atomic>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "prism/plugin/kv_methods.h"
#include "prism/plugin/pool.h"
#include "prism/tracing/tracer.h"
#include "prism/v1/kv.grpc.pb.h"

namespace prism::sqlite {

struct SqliteOptions {
  std::string data_dir = ".";
  std::string file = "prism.db";  // inside data_dir
  int pool_size = 4;
  int busy_timeout_ms = 5000;
  prism::tracing::Tracer tracer;
};

// One connection and its prepared statements.
class Connection {
 public:
  ~Connection();
  sqlite3* db = nullptr;
  sqlite3_stmt* get = nullptr;
  sqlite3_stmt* set = nullptr;
  sqlite3_stmt* del = nullptr;
  sqlite3_stmt* exists = nullptr;
  sqlite3_stmt* begin_read = nullptr;
  sqlite3_stmt* begin_write = nullptr;
  sqlite3_stmt* commit = nullptr;
  sqlite3_stmt* rollback = nullptr;
  // Steady-clock nanoseconds after which running statements are
  // interrupted (the call's deadline); 0 = none.
  std::atomic<int64_t> deadline_ns{0};
};

class SqliteService final : public prism::v1::KeyValue::Service {
 public:
  // Opens (creating if needed) the database and the pool. Errors name the
  // file and SQLite's reason.
  static absl::StatusOr<std::unique_ptr<SqliteService>> Open(SqliteOptions options);

  PRISM_KV_SYNC_METHODS();

  const std::string& path() const { return path_; }
  prism::plugin::Pool<Connection>& pool() { return *pool_; }

 private:
  SqliteService() = default;
  std::string path_;
  prism::tracing::Tracer tracer_;
  std::unique_ptr<prism::plugin::Pool<Connection>> pool_;
};

// The statements, as recorded in db.query.text.
namespace sql {
inline constexpr const char* kGet = "SELECT value FROM kv WHERE ns = ? AND key = ?";
inline constexpr const char* kSet =
    "INSERT INTO kv (ns, key, value) VALUES (?, ?, ?) "
    "ON CONFLICT (ns, key) DO UPDATE SET value = excluded.value";
inline constexpr const char* kDelete = "DELETE FROM kv WHERE ns = ? AND key = ?";
inline constexpr const char* kExists = "SELECT 1 FROM kv WHERE ns = ? AND key = ?";
}  // namespace sql

}  // namespace prism::sqlite
