#include "sqlite_service.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>

#include "prism/grpc_tracing/server.h"
#include "prism/plugin/db_span.h"
#include "prism/plugin/status.h"
#include "prism/plugin/validation.h"

namespace prism::sqlite {
namespace {

using prism::plugin::DbOperation;
using prism::plugin::DbSpan;
using prism::tracing::SpanContext;

int64_t SteadyNowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// Interrupts a running statement once the call's deadline has passed.
int ProgressHandler(void* arg) {
  auto* c = static_cast<Connection*>(arg);
  int64_t deadline = c->deadline_ns.load(std::memory_order_relaxed);
  return deadline != 0 && SteadyNowNs() > deadline ? 1 : 0;
}

absl::Status MakeDirs(const std::string& dir) {
  if (dir.empty()) return absl::OkStatus();
  std::string path;
  size_t pos = 0;
  while (pos != std::string::npos) {
    pos = dir.find('/', pos + 1);
    path = dir.substr(0, pos);
    if (path.empty()) continue;
    struct stat st;
    if (stat(path.c_str(), &st) == 0) {
      if (!S_ISDIR(st.st_mode)) {
        return absl::FailedPreconditionError("cannot create data directory '" + dir + "': '" +
                                             path + "' is not a directory");
      }
      continue;
    }
    if (mkdir(path.c_str(), 0700) != 0 && errno != EEXIST) {
      return absl::FailedPreconditionError("cannot create data directory '" + dir +
                                           "': " + std::strerror(errno));
    }
  }
  return absl::OkStatus();
}

absl::Status Exec(sqlite3* db, const char* sql) {
  char* err = nullptr;
  int rc = sqlite3_exec(db, sql, nullptr, nullptr, &err);
  if (rc == SQLITE_OK) return absl::OkStatus();
  std::string msg = err ? err : sqlite3_errstr(rc);
  sqlite3_free(err);
  return absl::UnavailableError(msg);
}

absl::StatusOr<std::unique_ptr<Connection>> OpenConnection(const std::string& path,
                                                           int busy_timeout_ms, bool first) {
  auto c = std::make_unique<Connection>();
  auto fail = [&](const std::string& why) {
    return absl::UnavailableError("cannot open database '" + path + "': " + why);
  };
  if (first) {
    // SQLite creates the file 0644 (and its -wal/-shm with the same mode):
    // create it 0600 first so only this user can read the values.
    int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd >= 0) ::close(fd);
  }
  int rc =
      sqlite3_open_v2(path.c_str(), &c->db,
                      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
  if (rc != SQLITE_OK) return fail(c->db ? sqlite3_errmsg(c->db) : sqlite3_errstr(rc));
  sqlite3_extended_result_codes(c->db, 1);
  sqlite3_busy_timeout(c->db, busy_timeout_ms);
  if (first) {
    // Reading the journal mode touches the file: a file that is not a
    // database fails here, at startup, not on the first call.
    sqlite3_stmt* wal = nullptr;
    rc = sqlite3_prepare_v2(c->db, "PRAGMA journal_mode=WAL", -1, &wal, nullptr);
    if (rc == SQLITE_OK) rc = sqlite3_step(wal);
    std::string mode =
        rc == SQLITE_ROW ? reinterpret_cast<const char*>(sqlite3_column_text(wal, 0)) : "";
    if (rc != SQLITE_ROW) {
      std::string why = sqlite3_errmsg(c->db);
      sqlite3_finalize(wal);
      return fail(why);
    }
    sqlite3_finalize(wal);
    if (mode != "wal") return fail("cannot switch to WAL mode (journal_mode is " + mode + ")");
    if (auto st = Exec(c->db,
                       "CREATE TABLE IF NOT EXISTS kv (ns TEXT NOT NULL, key TEXT NOT NULL, "
                       "value BLOB NOT NULL, PRIMARY KEY (ns, key)) WITHOUT ROWID");
        !st.ok()) {
      return fail(std::string(st.message()));
    }
  }
  if (auto st = Exec(c->db, "PRAGMA synchronous=NORMAL"); !st.ok()) {
    return fail(std::string(st.message()));
  }
  struct {
    sqlite3_stmt** out;
    const char* sql;
  } stmts[] = {{&c->get, sql::kGet},      {&c->set, sql::kSet},
               {&c->del, sql::kDelete},   {&c->exists, sql::kExists},
               {&c->begin_read, "BEGIN"}, {&c->begin_write, "BEGIN IMMEDIATE"},
               {&c->commit, "COMMIT"},    {&c->rollback, "ROLLBACK"}};
  for (auto& s : stmts) {
    rc = sqlite3_prepare_v3(c->db, s.sql, -1, SQLITE_PREPARE_PERSISTENT, s.out, nullptr);
    if (rc != SQLITE_OK) return fail(sqlite3_errmsg(c->db));
  }
  sqlite3_progress_handler(c->db, 1000, ProgressHandler, c.get());
  return c;
}

// Resets a statement and drops its bindings when the scope ends.
class StmtScope {
 public:
  explicit StmtScope(sqlite3_stmt* s) : s_(s) {}
  ~StmtScope() {
    sqlite3_reset(s_);
    sqlite3_clear_bindings(s_);
  }
  sqlite3_stmt* get() const { return s_; }

 private:
  sqlite3_stmt* s_;
};

void BindText(sqlite3_stmt* s, int i, const std::string& v) {
  sqlite3_bind_text(s, i, v.data(), static_cast<int>(v.size()), SQLITE_STATIC);
}

// Sets the connection's deadline for the duration of a call.
class DeadlineScope {
 public:
  DeadlineScope(Connection& c, std::chrono::system_clock::time_point deadline) : c_(c) {
    int64_t ns = 0;
    if (deadline != std::chrono::system_clock::time_point::max()) {
      auto left = deadline - std::chrono::system_clock::now();
      ns = SteadyNowNs() + std::chrono::duration_cast<std::chrono::nanoseconds>(left).count();
      if (ns == 0) ns = 1;
    }
    c_.deadline_ns.store(ns, std::memory_order_relaxed);
  }
  ~DeadlineScope() { c_.deadline_ns.store(0, std::memory_order_relaxed); }

 private:
  Connection& c_;
};

struct CallState {
  grpc::ServerContext* ctx;
  Connection& conn;
  SpanContext parent;
  const std::string& path;
  const prism::tracing::Tracer& tracer;
};

DbOperation Op(const CallState& cs, std::string_view operation, std::string_view query,
               int64_t batch = 0) {
  DbOperation op;
  op.system = "sqlite";
  op.operation = operation;
  op.collection = "kv";
  op.db_namespace = cs.path;
  op.query_text = query;
  op.batch_size = batch;
  return op;
}

// Maps a SQLite failure to a gRPC status and records it on the span.
grpc::Status Fail(const CallState& cs, DbSpan& span, int rc) {
  int primary = rc & 0xff;
  std::string msg = sqlite3_errmsg(cs.conn.db);
  span.SetError(std::to_string(rc), msg);
  switch (primary) {
    case SQLITE_INTERRUPT:
      if (cs.ctx->deadline() <= std::chrono::system_clock::now()) {
        return grpc::Status(grpc::StatusCode::DEADLINE_EXCEEDED,
                            "deadline exceeded while running the statement");
      }
      return grpc::Status(grpc::StatusCode::CANCELLED, "statement interrupted");
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      return grpc::Status(grpc::StatusCode::UNAVAILABLE, "database is busy: " + msg);
    case SQLITE_FULL:
      return grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED, "database is full: " + msg);
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
      return grpc::Status(grpc::StatusCode::DATA_LOSS, "database is corrupt: " + msg);
    case SQLITE_IOERR:
    case SQLITE_CANTOPEN:
    case SQLITE_READONLY:
      return grpc::Status(grpc::StatusCode::UNAVAILABLE, "database unavailable: " + msg);
    default:
      return grpc::Status(grpc::StatusCode::INTERNAL, "sqlite: " + msg);
  }
}

// Runs one step of a statement that returns no rows.
int StepDone(sqlite3_stmt* s) {
  int rc = sqlite3_step(s);
  sqlite3_reset(s);
  return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

// One lookup with the prepared get statement: SQLITE_ROW (found), SQLITE_DONE
// (missing), or an error code.
int GetOne(Connection& c, const std::string& ns, const std::string& key, std::string* value) {
  StmtScope s(c.get);
  BindText(s.get(), 1, ns);
  BindText(s.get(), 2, key);
  int rc = sqlite3_step(s.get());
  if (rc == SQLITE_ROW && value) {
    const void* blob = sqlite3_column_blob(s.get(), 0);
    int n = sqlite3_column_bytes(s.get(), 0);
    value->assign(static_cast<const char*>(blob ? blob : ""), static_cast<size_t>(n));
  }
  return rc;
}

int SetOne(Connection& c, const std::string& ns, const std::string& key, const std::string& value) {
  StmtScope s(c.set);
  BindText(s.get(), 1, ns);
  BindText(s.get(), 2, key);
  // A non-null pointer: an empty value is a zero-length blob, not NULL.
  sqlite3_bind_blob(s.get(), 3, value.data(), static_cast<int>(value.size()), SQLITE_STATIC);
  int rc = sqlite3_step(s.get());
  return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

int DeleteOne(Connection& c, const std::string& ns, const std::string& key, bool* deleted) {
  StmtScope s(c.del);
  BindText(s.get(), 1, ns);
  BindText(s.get(), 2, key);
  int rc = sqlite3_step(s.get());
  if (rc != SQLITE_DONE) return rc;
  *deleted = sqlite3_changes(c.db) > 0;
  return SQLITE_OK;
}

}  // namespace

Connection::~Connection() {
  for (sqlite3_stmt* s : {get, set, del, exists, begin_read, begin_write, commit, rollback}) {
    sqlite3_finalize(s);
  }
  sqlite3_close_v2(db);
}

absl::StatusOr<std::unique_ptr<SqliteService>> SqliteService::Open(SqliteOptions options) {
  if (options.pool_size < 1) return absl::InvalidArgumentError("pool size must be at least 1");
  if (auto st = MakeDirs(options.data_dir); !st.ok()) return st;
  std::string path =
      options.data_dir.empty() ? options.file : options.data_dir + "/" + options.file;
  std::vector<std::unique_ptr<Connection>> conns;
  for (int i = 0; i < options.pool_size; ++i) {
    auto c = OpenConnection(path, options.busy_timeout_ms, i == 0);
    if (!c.ok()) return c.status();
    conns.push_back(std::move(*c));
  }
  std::unique_ptr<SqliteService> s(new SqliteService());
  s->path_ = path;
  s->tracer_ = options.tracer;
  s->pool_ =
      std::make_unique<prism::plugin::Pool<Connection>>("sqlite", std::move(conns), options.tracer);
  return s;
}

// Validates, checks the deadline, takes a connection (a pool.acquire span)
// and runs `fn(CallState&)` with the connection's deadline set.
#define PRISM_SQLITE_CALL(ctx, req, body)                                            \
  do {                                                                               \
    if (grpc::Status st = prism::plugin::Validate(*(req)); !st.ok()) return st;      \
    if (grpc::Status st = prism::plugin::CheckDeadline(*(ctx)); !st.ok()) return st; \
    SpanContext parent = prism::grpc_tracing::ServerSpanContext(ctx);                \
    auto lease = pool_->Acquire(parent, (ctx)->deadline());                          \
    if (!lease.ok()) return prism::plugin::ToGrpcStatus(lease.status());             \
    DeadlineScope deadline_scope(**lease, (ctx)->deadline());                        \
    CallState cs{ctx, **lease, parent, path_, tracer_};                              \
    body                                                                             \
  } while (0)

grpc::Status SqliteService::Get(grpc::ServerContext* ctx, const prism::v1::GetRequest* req,
                                prism::v1::GetResponse* resp) {
  PRISM_SQLITE_CALL(ctx, req, {
    DbSpan span(tracer_, parent, Op(cs, "SELECT", sql::kGet));
    int rc = GetOne(cs.conn, req->namespace_(), req->key(), resp->mutable_value());
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) return Fail(cs, span, rc);
    resp->set_found(rc == SQLITE_ROW);
    span.SetReturnedRows(rc == SQLITE_ROW ? 1 : 0);
    return grpc::Status::OK;
  });
}

grpc::Status SqliteService::Set(grpc::ServerContext* ctx, const prism::v1::SetRequest* req,
                                prism::v1::SetResponse*) {
  PRISM_SQLITE_CALL(ctx, req, {
    DbSpan span(tracer_, parent, Op(cs, "INSERT", sql::kSet));
    int rc = SetOne(cs.conn, req->namespace_(), req->key(), req->value());
    if (rc != SQLITE_OK) return Fail(cs, span, rc);
    return grpc::Status::OK;
  });
}

grpc::Status SqliteService::Delete(grpc::ServerContext* ctx, const prism::v1::DeleteRequest* req,
                                   prism::v1::DeleteResponse* resp) {
  PRISM_SQLITE_CALL(ctx, req, {
    DbSpan span(tracer_, parent, Op(cs, "DELETE", sql::kDelete));
    bool deleted = false;
    int rc = DeleteOne(cs.conn, req->namespace_(), req->key(), &deleted);
    if (rc != SQLITE_OK) return Fail(cs, span, rc);
    resp->set_deleted(deleted);
    return grpc::Status::OK;
  });
}

grpc::Status SqliteService::Exists(grpc::ServerContext* ctx, const prism::v1::ExistsRequest* req,
                                   prism::v1::ExistsResponse* resp) {
  PRISM_SQLITE_CALL(ctx, req, {
    DbSpan span(tracer_, parent, Op(cs, "SELECT", sql::kExists));
    StmtScope s(cs.conn.exists);
    BindText(s.get(), 1, req->namespace_());
    BindText(s.get(), 2, req->key());
    int rc = sqlite3_step(s.get());
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) return Fail(cs, span, rc);
    resp->set_exists(rc == SQLITE_ROW);
    span.SetReturnedRows(rc == SQLITE_ROW ? 1 : 0);
    return grpc::Status::OK;
  });
}

grpc::Status SqliteService::BatchGet(grpc::ServerContext* ctx,
                                     const prism::v1::BatchGetRequest* req,
                                     prism::v1::BatchGetResponse* resp) {
  PRISM_SQLITE_CALL(ctx, req, {
    DbSpan span(tracer_, parent, Op(cs, "BATCH SELECT", sql::kGet, req->keys_size()));
    // One read transaction: a consistent snapshot of all keys.
    if (int rc = StepDone(cs.conn.begin_read); rc != SQLITE_OK) return Fail(cs, span, rc);
    int64_t rows = 0;
    for (const auto& key : req->keys()) {
      auto* out = resp->add_results();
      int rc = GetOne(cs.conn, req->namespace_(), key, out->mutable_value());
      if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        grpc::Status st = Fail(cs, span, rc);
        StepDone(cs.conn.rollback);
        resp->Clear();
        return st;
      }
      out->set_found(rc == SQLITE_ROW);
      rows += rc == SQLITE_ROW;
    }
    if (int rc = StepDone(cs.conn.commit); rc != SQLITE_OK) {
      StepDone(cs.conn.rollback);
      return Fail(cs, span, rc);
    }
    span.SetReturnedRows(rows);
    return grpc::Status::OK;
  });
}

grpc::Status SqliteService::BatchSet(grpc::ServerContext* ctx,
                                     const prism::v1::BatchSetRequest* req,
                                     prism::v1::BatchSetResponse*) {
  PRISM_SQLITE_CALL(ctx, req, {
    DbSpan span(tracer_, parent, Op(cs, "BATCH INSERT", sql::kSet, req->items_size()));
    // Atomic: all items or none.
    if (int rc = StepDone(cs.conn.begin_write); rc != SQLITE_OK) return Fail(cs, span, rc);
    for (const auto& item : req->items()) {
      int rc = SetOne(cs.conn, req->namespace_(), item.key(), item.value());
      if (rc != SQLITE_OK) {
        grpc::Status st = Fail(cs, span, rc);
        StepDone(cs.conn.rollback);
        return st;
      }
    }
    if (int rc = StepDone(cs.conn.commit); rc != SQLITE_OK) {
      grpc::Status st = Fail(cs, span, rc);
      StepDone(cs.conn.rollback);
      return st;
    }
    return grpc::Status::OK;
  });
}

grpc::Status SqliteService::BatchDelete(grpc::ServerContext* ctx,
                                        const prism::v1::BatchDeleteRequest* req,
                                        prism::v1::BatchDeleteResponse* resp) {
  PRISM_SQLITE_CALL(ctx, req, {
    DbSpan span(tracer_, parent, Op(cs, "BATCH DELETE", sql::kDelete, req->keys_size()));
    if (int rc = StepDone(cs.conn.begin_write); rc != SQLITE_OK) return Fail(cs, span, rc);
    int64_t n = 0;
    for (const auto& key : req->keys()) {
      bool deleted = false;
      int rc = DeleteOne(cs.conn, req->namespace_(), key, &deleted);
      if (rc != SQLITE_OK) {
        grpc::Status st = Fail(cs, span, rc);
        StepDone(cs.conn.rollback);
        return st;
      }
      n += deleted;
    }
    if (int rc = StepDone(cs.conn.commit); rc != SQLITE_OK) {
      grpc::Status st = Fail(cs, span, rc);
      StepDone(cs.conn.rollback);
      return st;
    }
    resp->set_deleted(n);
    return grpc::Status::OK;
  });
}

}  // namespace prism::sqlite
