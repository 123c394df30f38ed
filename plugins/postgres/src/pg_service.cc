#include "pg_service.h"

#include <poll.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "prism/grpc_tracing/server.h"
#include "prism/plugin/db_span.h"
#include "prism/plugin/log.h"
#include "prism/plugin/status.h"
#include "prism/plugin/validation.h"
#include "sqlcommenter.h"

namespace prism::postgres {

using Clock = std::chrono::system_clock;
using prism::plugin::DbOperation;
using prism::plugin::DbSpan;
using prism::plugin::LogLevel;
using prism::tracing::SpanContext;

namespace {

using Result = std::unique_ptr<PGresult, decltype(&PQclear)>;
Result NoResult() { return Result(nullptr, &PQclear); }

constexpr const char* kStmtNames[] = {"prism_get", "prism_set", "prism_delete", "prism_exists"};
constexpr int kStmtParams[] = {2, 3, 2, 2};
// A statement the server was asked to time out at the deadline answers
// with 57014 at once; this is how long past the deadline the plugin waits
// for an answer before it gives the connection up (a server that stopped
// answering, a lost network) and returns DEADLINE_EXCEEDED.
constexpr auto kAnswerGrace = std::chrono::milliseconds(100);

// libpq's messages end with a newline and may span lines.
std::string OneLine(const char* msg) {
  std::string s = msg ? msg : "";
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  for (size_t p = s.find('\n'); p != std::string::npos; p = s.find('\n', p)) {
    s.replace(p, 1, "; ");
  }
  return s.empty() ? "no reason given" : s;
}

int64_t MsUntil(Clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t - Clock::now()).count();
}

// 1 ready, 0 deadline passed, -1 poll error.
int WaitFd(int fd, short events, Clock::time_point deadline) {
  for (;;) {
    int timeout = -1;
    if (deadline != Clock::time_point::max()) {
      int64_t ms = MsUntil(deadline);
      if (ms < 0) return 0;
      timeout = static_cast<int>(std::min<int64_t>(ms + 1, 60000));
    }
    pollfd p{fd, events, 0};
    int r = poll(&p, 1, timeout);
    if (r > 0) return 1;
    if (r < 0 && errno != EINTR) return -1;
    if (r == 0 && deadline != Clock::time_point::max() && MsUntil(deadline) < 0) return 0;
  }
}

absl::StatusOr<PGconn*> Connect(const std::string& conninfo, Clock::time_point deadline) {
  PGconn* c = PQconnectStart(conninfo.c_str());
  if (c == nullptr) return absl::ResourceExhaustedError("libpq: out of memory");
  auto fail = [&](absl::StatusCode code, const std::string& why) {
    PQfinish(c);
    return absl::Status(code, "cannot connect to postgresql: " + why);
  };
  if (PQstatus(c) == CONNECTION_BAD) {
    return fail(absl::StatusCode::kUnavailable, OneLine(PQerrorMessage(c)));
  }
  PostgresPollingStatusType st = PGRES_POLLING_WRITING;
  while (st != PGRES_POLLING_OK) {
    if (st == PGRES_POLLING_FAILED) {
      return fail(absl::StatusCode::kUnavailable, OneLine(PQerrorMessage(c)));
    }
    int r = WaitFd(PQsocket(c), st == PGRES_POLLING_READING ? POLLIN : POLLOUT, deadline);
    if (r == 0) return fail(absl::StatusCode::kDeadlineExceeded, "no answer before the deadline");
    if (r < 0) return fail(absl::StatusCode::kUnavailable, std::strerror(errno));
    st = PQconnectPoll(c);
  }
  // Server notices ("relation already exists, skipping") go to the plugin
  // log at debug level, not raw to stderr.
  PQsetNoticeProcessor(
      c,
      [](void*, const char* message) {
        prism::plugin::Log(LogLevel::kDebug, "postgresql: " + OneLine(message));
      },
      nullptr);
  // Non-blocking: a 4 MiB value is sent as the socket takes it, with the
  // deadline checked in between.
  PQsetnonblocking(c, 1);
  return c;
}

}  // namespace

PgConn::~PgConn() { Drop(); }

void PgConn::Drop() {
  if (conn) PQfinish(conn);
  conn = nullptr;
  prepared = 0;
  statement_timeout_ms = -1;
}

bool IsValidTableName(const std::string& name) {
  auto ident = [](std::string_view s) {
    if (s.empty() || s.size() > 63) return false;
    if (!(s[0] == '_' || (s[0] >= 'a' && s[0] <= 'z'))) return false;
    return std::all_of(s.begin(), s.end(), [](char c) {
      return c == '_' || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
    });
  };
  size_t dot = name.find('.');
  if (dot == std::string::npos) return ident(name);
  return ident(std::string_view(name).substr(0, dot)) &&
         ident(std::string_view(name).substr(dot + 1));
}

// One call on one connection.
struct PgService::Call {
  grpc::ServerContext* ctx;
  PgConn& c;
  const PgService& svc;
  Clock::time_point deadline;

  Clock::time_point wait_until() const {
    return deadline == Clock::time_point::max() ? deadline : deadline + kAnswerGrace;
  }
  std::string where() const {
    return svc.server_port_ > 0 ? svc.server_address_ + ":" + std::to_string(svc.server_port_)
                                : svc.server_address_;
  }

  // The connection broke (or stopped answering): close it; the next call
  // on this pool slot reconnects.
  absl::Status Lost(DbSpan* span, absl::StatusCode code, const std::string& what) {
    std::string why = c.conn ? OneLine(PQerrorMessage(c.conn)) : "";
    std::string msg =
        code == absl::StatusCode::kDeadlineExceeded
            ? "deadline exceeded: no answer from postgresql at " + where() + " " + what
            : "connection to postgresql at " + where() + " lost " + what + ": " + why;
    if (span) span->SetError("", msg);
    prism::plugin::Log(LogLevel::kWarn, msg);
    c.Drop();
    return absl::Status(code, msg);
  }

  absl::Status Flush(DbSpan* span) {
    for (;;) {
      int r = PQflush(c.conn);
      if (r == 0) return absl::OkStatus();
      if (r < 0) return Lost(span, absl::StatusCode::kUnavailable, "while sending");
      int w = WaitFd(PQsocket(c.conn), POLLIN | POLLOUT, wait_until());
      if (w == 0) return Lost(span, absl::StatusCode::kDeadlineExceeded, "while sending");
      if (w < 0 || !PQconsumeInput(c.conn)) {
        return Lost(span, absl::StatusCode::kUnavailable, "while sending");
      }
    }
  }

  // The next result (nullptr: no more) within the deadline.
  absl::StatusOr<Result> Next(DbSpan* span) {
    while (PQisBusy(c.conn)) {
      int r = WaitFd(PQsocket(c.conn), POLLIN, wait_until());
      if (r == 0) return Lost(span, absl::StatusCode::kDeadlineExceeded, "before the deadline");
      if (r < 0 || !PQconsumeInput(c.conn)) {
        return Lost(span, absl::StatusCode::kUnavailable, "while waiting for the answer");
      }
    }
    return Result(PQgetResult(c.conn), &PQclear);
  }

  // The gRPC status for an error PostgreSQL answered with (recorded on the span).
  absl::Status Refused(DbSpan* span, const PGresult* res) {
    const char* state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    std::string sqlstate = state ? state : "";
    std::string primary = OneLine(PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY));
    if (span) span->SetError(sqlstate, primary);
    std::string msg = "postgresql: " + primary + " (SQLSTATE " + sqlstate + ")";
    std::string cls = sqlstate.substr(0, 2);
    absl::StatusCode code = absl::StatusCode::kInternal;
    if (sqlstate == "57014") {
      if (Clock::now() >= deadline) {
        return absl::DeadlineExceededError("deadline exceeded while running the statement (" + msg +
                                           ")");
      }
      code = absl::StatusCode::kCancelled;
    } else if (cls == "08" || sqlstate == "57P01" || sqlstate == "57P02" || sqlstate == "57P03" ||
               cls == "53" || sqlstate == "25006") {
      code = sqlstate == "53100" ? absl::StatusCode::kResourceExhausted
                                 : absl::StatusCode::kUnavailable;
    } else if (cls == "22" || cls == "54") {
      // Data PostgreSQL refuses: a NUL byte or invalid UTF-8 in text,
      // a key too long for the index, ...
      code = absl::StatusCode::kInvalidArgument;
    } else if (cls == "40") {
      code = absl::StatusCode::kAborted;
    } else if (cls == "42") {
      code = absl::StatusCode::kFailedPrecondition;  // the table is not what the plugin expects
    }
    if (PQstatus(c.conn) != CONNECTION_OK) c.Drop();
    return absl::Status(code, msg);
  }

  // Reads the answer to what was sent: the last result; an error when any
  // result is one.
  absl::StatusOr<Result> Await(DbSpan* span) {
    if (auto st = Flush(span); !st.ok()) return st;
    Result last = NoResult();
    absl::Status error;
    for (;;) {
      auto r = Next(span);
      if (!r.ok()) return r.status();
      if (!*r) break;
      ExecStatusType s = PQresultStatus(r->get());
      if (s == PGRES_FATAL_ERROR || s == PGRES_NONFATAL_ERROR || s == PGRES_BAD_RESPONSE) {
        if (error.ok()) error = Refused(span, r->get());
        if (!c.conn) return error;
        continue;
      }
      last = std::move(*r);
    }
    if (!error.ok()) return error;
    if (!last) return Lost(span, absl::StatusCode::kUnavailable, "(no answer)");
    return last;
  }

  // The comment for statements run in `span` ("" when off or unsampled: a
  // traceparent of a span nobody records leads nowhere).
  // Sized so that `sql` with it fits in pg_stat_activity's 1024 bytes.
  std::string Comment(DbSpan& span, const std::string& sql) const {
    if (!svc.options_.sqlcommenter || !span.span().IsRecording()) return "";
    if (!span.context().IsSampled()) return "";
    size_t room =
        kPgActivityQueryBytes > sql.size() + 2 ? kPgActivityQueryBytes - sql.size() - 2 : 0;
    return TraceComment(span.context(), room);
  }

  // A simple-protocol command (BEGIN, COMMIT, SET), commented like the statements.
  absl::Status Command(DbSpan& span, const std::string& sql) {
    std::string text = AppendSqlComment(sql, Comment(span, sql));
    if (!PQsendQuery(c.conn, text.c_str())) {
      return Lost(&span, absl::StatusCode::kUnavailable, "while sending");
    }
    auto r = Await(&span);
    return r.ok() ? absl::OkStatus() : r.status();
  }

  // Sets the server's statement_timeout to about what is left of the
  // deadline (only when the value set on this connection is off by more than
  // the slack: normally once per connection), merged with `then` (BEGIN ...)
  // into one round trip when both are needed.
  absl::Status Start(DbSpan& span, const std::string& then) {
    int64_t want = 0;  // no deadline: no timeout
    int64_t slack = 0;
    // statement_timeout is an int of milliseconds: a deadline weeks away is
    // no deadline for it.
    if (deadline != Clock::time_point::max() && MsUntil(deadline) < 2'000'000'000) {
      want = std::max<int64_t>(1, MsUntil(deadline) + 1);
      slack = std::clamp<int64_t>(want / 20, 10, 250);
    }
    std::string sql;
    int64_t cur = c.statement_timeout_ms;
    bool ok = want == 0 ? cur == 0 : (cur >= want && cur <= want + 2 * slack);
    int64_t set_to = want == 0 ? 0 : want + slack;
    if (!ok) sql = "SET statement_timeout = " + std::to_string(set_to);
    if (!then.empty()) sql += sql.empty() ? then : "; " + then;
    if (sql.empty()) return absl::OkStatus();
    if (auto st = Command(span, sql); !st.ok()) return st;
    if (!ok) c.statement_timeout_ms = set_to;
    return absl::OkStatus();
  }

  // One statement: binary parameters in, binary results out.
  absl::StatusOr<Result> Run(DbSpan& span, Stmt s, const char* const* values, const int* lengths) {
    static const int kFormats[3] = {1, 1, 1};
    const int n = kStmtParams[s];
    const std::string& sql = svc.sql_[s];
    std::string comment = Comment(span, sql);
    StatementMode mode = svc.options_.statements;
    int sent = 0;
    if (comment.empty() && mode != StatementMode::kUnnamed) {
      if (!(c.prepared & (1u << s))) {
        if (!PQsendPrepare(c.conn, kStmtNames[s], sql.c_str(), n, nullptr)) {
          return Lost(&span, absl::StatusCode::kUnavailable, "while sending");
        }
        if (auto r = Await(&span); !r.ok()) return r.status();
        c.prepared |= 1u << s;
      }
      sent = PQsendQueryPrepared(c.conn, kStmtNames[s], n, values, lengths, kFormats, 1);
    } else {
      std::string text = AppendSqlComment(sql, comment);
      if (mode == StatementMode::kPrepareEach) {
        if (!PQsendPrepare(c.conn, "", text.c_str(), n, nullptr)) {
          return Lost(&span, absl::StatusCode::kUnavailable, "while sending");
        }
        if (auto r = Await(&span); !r.ok()) return r.status();
        sent = PQsendQueryPrepared(c.conn, "", n, values, lengths, kFormats, 1);
      } else {
        sent = PQsendQueryParams(c.conn, text.c_str(), n, nullptr, values, lengths, kFormats, 1);
      }
    }
    if (!sent) return Lost(&span, absl::StatusCode::kUnavailable, "while sending");
    return Await(&span);
  }

  // After a failed batch: leave no open transaction behind.
  void Rollback(DbSpan& span) {
    if (!c.conn) return;
    // A SET merged with the BEGIN belongs to the transaction: rolled back
    // with it, so the value on the connection is unknown again.
    c.statement_timeout_ms = -1;
    if (PQtransactionStatus(c.conn) == PQTRANS_IDLE) return;
    if (Clock::now() >= deadline || !Command(span, "ROLLBACK").ok()) c.Drop();
  }

  DbOperation Op(std::string_view operation, Stmt s, int64_t batch = 0) const {
    DbOperation op;
    op.system = "postgresql";
    op.operation = operation;
    op.collection = svc.options_.table;
    op.db_namespace = svc.database_;
    op.query_text = svc.sql_[s];
    op.server_address = svc.server_address_;
    op.server_port = svc.server_port_;
    op.batch_size = batch;
    return op;
  }
};

absl::StatusOr<std::unique_ptr<PgService>> PgService::Open(PgOptions options) {
  if (options.pool_size < 1) return absl::InvalidArgumentError("pool size must be at least 1");
  if (!IsValidTableName(options.table)) {
    return absl::InvalidArgumentError("--table '" + options.table +
                                      "': expected a lower-case SQL identifier ([a-z_][a-z0-9_]*, "
                                      "at most 63 bytes), optionally schema.table");
  }
  std::unique_ptr<PgService> s(new PgService());
  const std::string& t = options.table;
  s->sql_[kGet] = "SELECT value FROM " + t + " WHERE ns = $1 AND key = $2";
  s->sql_[kSet] = "INSERT INTO " + t +
                  " (ns, key, value) VALUES ($1, $2, $3) "
                  "ON CONFLICT (ns, key) DO UPDATE SET value = EXCLUDED.value";
  s->sql_[kDelete] = "DELETE FROM " + t + " WHERE ns = $1 AND key = $2";
  s->sql_[kExists] = "SELECT 1 FROM " + t + " WHERE ns = $1 AND key = $2";
  s->options_ = options;

  auto first = std::make_unique<PgConn>();
  auto deadline = Clock::now() + std::chrono::milliseconds(options.connect_timeout_ms);
  auto conn = Connect(options.conninfo, deadline);
  if (!conn.ok()) return conn.status();
  first->conn = *conn;
  const char* host = PQhost(first->conn);
  s->server_address_ = host && *host ? host : "localhost";
  if (s->server_address_[0] != '/') {
    const char* port = PQport(first->conn);
    s->server_port_ = port && *port ? std::atoi(port) : 5432;
  }
  s->database_ = PQdb(first->conn) ? PQdb(first->conn) : "";

  // Startup work in a span of its own, so the statements have a parent.
  prism::tracing::Span start = options.tracer.StartSpan("prism.postgres.prepare");
  DbOperation op;
  op.system = "postgresql";
  op.operation = "CREATE TABLE";
  op.collection = t;
  op.db_namespace = s->database_;
  op.server_address = s->server_address_;
  op.server_port = s->server_port_;
  std::string create = "CREATE TABLE IF NOT EXISTS " + t +
                       " (ns text NOT NULL, key text NOT NULL, value bytea NOT NULL, "
                       "PRIMARY KEY (ns, key))";
  op.query_text = create;
  Call call{nullptr, *first, *s, deadline};
  absl::Status st;
  for (int attempt = 0; attempt < 2; ++attempt) {
    DbSpan span(options.tracer, start.context(), op);
    st = call.Command(span, create);
    // Two plugins creating the table at once: one loses with a unique
    // violation on the catalog; the table exists then.
    if (st.ok() || !first->conn || st.message().find("(SQLSTATE 23505)") == std::string::npos) {
      break;
    }
  }
  // db.namespace is "{database}|{schema}" (semconv, PostgreSQL): the
  // table's schema when it names one, else the one it resolves to.
  if (st.ok()) {
    std::string q = "SELECT current_schema()";
    if (t.find('.') != std::string::npos) q = "SELECT '" + t.substr(0, t.find('.')) + "'";
    if (!PQsendQuery(first->conn, q.c_str())) {
      st = absl::UnavailableError(OneLine(PQerrorMessage(first->conn)));
    } else if (auto r = call.Await(nullptr); !r.ok()) {
      st = r.status();
    } else if (PQntuples(r->get()) == 1 && !PQgetisnull(r->get(), 0, 0)) {
      s->database_ += "|" + std::string(PQgetvalue(r->get(), 0, 0));
    }
  }
  // Preparing the statements checks the table's columns now, not on the
  // first call.
  for (int i = 0; st.ok() && i < kStmtCount; ++i) {
    if (!PQsendPrepare(first->conn, kStmtNames[i], s->sql_[i].c_str(), kStmtParams[i], nullptr)) {
      st = absl::UnavailableError(OneLine(PQerrorMessage(first->conn)));
      break;
    }
    auto r = call.Await(nullptr);
    st = r.status();
    if (st.ok()) first->prepared |= 1u << i;
  }
  start.End();
  if (!st.ok()) {
    return absl::Status(st.code(), "postgresql at " + call.where() + ", table '" + t +
                                       "': " + std::string(st.message()));
  }
  std::vector<std::unique_ptr<PgConn>> conns;
  conns.push_back(std::move(first));
  for (int i = 1; i < options.pool_size; ++i) conns.push_back(std::make_unique<PgConn>());
  s->pool_ =
      std::make_unique<prism::plugin::Pool<PgConn>>("postgres", std::move(conns), options.tracer);
  prism::plugin::Log(LogLevel::kInfo, "connected to postgresql at " + call.where() +
                                          ", database|schema '" + s->database_ + "', table '" + t +
                                          "'");
  return s;
}

absl::Status PgService::EnsureConnected(PgConn& c, Clock::time_point deadline,
                                        const SpanContext& parent) {
  if (c.conn) {
    // An idle connection whose server went away (restart, crash) has the
    // server's goodbye ("terminating connection due to administrator
    // command") and its end-of-file waiting. An idle session is sent
    // nothing else (the plugin never LISTENs), so anything to read means
    // the connection is gone: reconnect now rather than fail the call on it.
    pollfd p{PQsocket(c.conn), POLLIN, 0};
    if (poll(&p, 1, 0) != 0) {
      prism::plugin::Log(LogLevel::kInfo,
                         "postgresql connection closed by the server; reconnecting");
      c.Drop();
    }
    if (c.conn && PQstatus(c.conn) == CONNECTION_OK) return absl::OkStatus();
    c.Drop();
  }
  auto until =
      std::min(deadline, Clock::now() + std::chrono::milliseconds(options_.connect_timeout_ms));
  prism::tracing::StartSpanOptions so;
  so.kind = prism::tracing::SpanKind::kInternal;
  if (parent.IsValid()) so.parent = parent;
  prism::tracing::Span span = options_.tracer.StartSpan("pool.connect", std::move(so));
  if (span.IsRecording()) {
    span.SetAttribute("server.address", server_address_);
    if (server_port_ > 0) span.SetAttribute("server.port", int64_t{server_port_});
  }
  auto conn = Connect(options_.conninfo, until);
  if (!conn.ok()) {
    absl::Status st = conn.status();
    if (st.code() == absl::StatusCode::kDeadlineExceeded && until < deadline) {
      st = absl::UnavailableError(std::string(st.message()) + " (connect-timeout-ms " +
                                  std::to_string(options_.connect_timeout_ms) + ")");
    }
    span.SetAttribute("error.type", absl::StatusCodeToString(st.code()));
    span.SetStatus(prism::tracing::StatusCode::kError,
                   std::string_view(st.message().data(), st.message().size()));
    span.End();
    return st;
  }
  c.conn = *conn;
  span.End();
  prism::plugin::Log(LogLevel::kInfo, "connected to postgresql");
  return absl::OkStatus();
}

// Validates, checks the deadline, takes a connection (a pool.acquire span),
// (re)connects it when needed and runs `body` with `call`. A connection
// left in a transaction or broken is closed on the way out.
#define PRISM_PG_CALL(ctx, req, body)                                                              \
  do {                                                                                             \
    if (grpc::Status st = prism::plugin::Validate(*(req)); !st.ok()) return st;                    \
    if (grpc::Status st = prism::plugin::CheckDeadline(*(ctx)); !st.ok()) return st;               \
    SpanContext parent = prism::grpc_tracing::ServerSpanContext(ctx);                              \
    Clock::time_point deadline = (ctx)->deadline();                                                \
    auto acquire_until =                                                                           \
        std::min(deadline, Clock::now() + std::chrono::milliseconds(options_.acquire_timeout_ms)); \
    auto lease = pool_->Acquire(parent, acquire_until);                                            \
    if (!lease.ok()) {                                                                             \
      if (acquire_until < deadline) {                                                              \
        return grpc::Status(grpc::StatusCode::UNAVAILABLE,                                         \
                            "no connection free in pool 'postgres' within "                        \
                            "acquire-timeout-ms " +                                                \
                                std::to_string(options_.acquire_timeout_ms) + " (" +               \
                                std::to_string(pool_->size()) + " connections, all busy)");        \
      }                                                                                            \
      return prism::plugin::ToGrpcStatus(lease.status());                                          \
    }                                                                                              \
    if (auto st = EnsureConnected(**lease, deadline, parent); !st.ok()) {                          \
      return prism::plugin::ToGrpcStatus(st);                                                      \
    }                                                                                              \
    Call call{ctx, **lease, *this, deadline};                                                      \
    struct Tidy {                                                                                  \
      PgConn& c;                                                                                   \
      ~Tidy() {                                                                                    \
        if (c.conn &&                                                                              \
            (PQstatus(c.conn) != CONNECTION_OK || PQtransactionStatus(c.conn) != PQTRANS_IDLE)) {  \
          c.Drop();                                                                                \
        }                                                                                          \
      }                                                                                            \
    } tidy{**lease};                                                                               \
    body                                                                                           \
  } while (0)

namespace {
// Parameters as (pointer, length) pairs; binary format throughout, so the
// server checks text itself (a NUL or invalid UTF-8: SQLSTATE 22021).
struct Params {
  const char* v[3];
  int l[3];
  Params(const std::string& a, const std::string& b)
      : v{a.data(), b.data(), nullptr},
        l{static_cast<int>(a.size()), static_cast<int>(b.size()), 0} {}
  Params(const std::string& a, const std::string& b, const std::string& c)
      : v{a.data(), b.data(), c.data()},
        l{static_cast<int>(a.size()), static_cast<int>(b.size()), static_cast<int>(c.size())} {}
};
// Whether a lookup found its row (recorded as db.response.returned_rows).
bool Found(PGresult* r, DbSpan& span) {
  bool found = PQntuples(r) > 0;
  span.SetReturnedRows(found ? 1 : 0);
  return found;
}

}  // namespace

template <typename Req, typename F>
grpc::Status PgService::Single(grpc::ServerContext* ctx, const Req* req, std::string_view operation,
                               Stmt s, const char* const* values, const int* lengths, F&& use) {
  PRISM_PG_CALL(ctx, req, {
    DbSpan span(options_.tracer, parent, call.Op(operation, s));
    if (auto st = call.Start(span, ""); !st.ok()) return prism::plugin::ToGrpcStatus(st);
    auto r = call.Run(span, s, values, lengths);
    if (!r.ok()) return prism::plugin::ToGrpcStatus(r.status());
    use(r->get(), span);
    return grpc::Status::OK;
  });
}

grpc::Status PgService::Get(grpc::ServerContext* ctx, const prism::v1::GetRequest* req,
                            prism::v1::GetResponse* resp) {
  Params p(req->namespace_(), req->key());
  return Single(ctx, req, "SELECT", kGet, p.v, p.l, [&](PGresult* r, DbSpan& span) {
    resp->set_found(Found(r, span));
    if (resp->found()) resp->set_value(PQgetvalue(r, 0, 0), PQgetlength(r, 0, 0));
  });
}

grpc::Status PgService::Set(grpc::ServerContext* ctx, const prism::v1::SetRequest* req,
                            prism::v1::SetResponse*) {
  Params p(req->namespace_(), req->key(), req->value());
  return Single(ctx, req, "INSERT", kSet, p.v, p.l, [](PGresult*, DbSpan&) {});
}

grpc::Status PgService::Delete(grpc::ServerContext* ctx, const prism::v1::DeleteRequest* req,
                               prism::v1::DeleteResponse* resp) {
  Params p(req->namespace_(), req->key());
  return Single(ctx, req, "DELETE", kDelete, p.v, p.l,
                [&](PGresult* r, DbSpan&) { resp->set_deleted(std::atoi(PQcmdTuples(r)) > 0); });
}

grpc::Status PgService::Exists(grpc::ServerContext* ctx, const prism::v1::ExistsRequest* req,
                               prism::v1::ExistsResponse* resp) {
  Params p(req->namespace_(), req->key());
  return Single(ctx, req, "SELECT", kExists, p.v, p.l,
                [&](PGresult* r, DbSpan& span) { resp->set_exists(Found(r, span)); });
}

grpc::Status PgService::BatchGet(grpc::ServerContext* ctx, const prism::v1::BatchGetRequest* req,
                                 prism::v1::BatchGetResponse* resp) {
  PRISM_PG_CALL(ctx, req, {
    DbSpan span(options_.tracer, parent, call.Op("BATCH SELECT", kGet, req->keys_size()));
    // One snapshot for all keys.
    if (auto st = call.Start(span, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"); !st.ok()) {
      return prism::plugin::ToGrpcStatus(st);
    }
    int64_t rows = 0;
    for (const auto& key : req->keys()) {
      Params p(req->namespace_(), key);
      auto r = call.Run(span, kGet, p.v, p.l);
      if (!r.ok()) {
        call.Rollback(span);
        resp->Clear();
        return prism::plugin::ToGrpcStatus(r.status());
      }
      auto* out = resp->add_results();
      bool found = PQntuples(r->get()) > 0;
      out->set_found(found);
      if (found) out->set_value(PQgetvalue(r->get(), 0, 0), PQgetlength(r->get(), 0, 0));
      rows += found;
    }
    if (auto st = call.Command(span, "COMMIT"); !st.ok()) {
      call.Rollback(span);
      resp->Clear();
      return prism::plugin::ToGrpcStatus(st);
    }
    span.SetReturnedRows(rows);
    return grpc::Status::OK;
  });
}

grpc::Status PgService::BatchSet(grpc::ServerContext* ctx, const prism::v1::BatchSetRequest* req,
                                 prism::v1::BatchSetResponse*) {
  PRISM_PG_CALL(ctx, req, {
    DbSpan span(options_.tracer, parent, call.Op("BATCH INSERT", kSet, req->items_size()));
    // Atomic: all items or none.
    if (auto st = call.Start(span, "BEGIN"); !st.ok()) return prism::plugin::ToGrpcStatus(st);
    for (const auto& item : req->items()) {
      Params p(req->namespace_(), item.key(), item.value());
      auto r = call.Run(span, kSet, p.v, p.l);
      if (!r.ok()) {
        call.Rollback(span);
        return prism::plugin::ToGrpcStatus(r.status());
      }
    }
    if (auto st = call.Command(span, "COMMIT"); !st.ok()) {
      call.Rollback(span);
      return prism::plugin::ToGrpcStatus(st);
    }
    return grpc::Status::OK;
  });
}

grpc::Status PgService::BatchDelete(grpc::ServerContext* ctx,
                                    const prism::v1::BatchDeleteRequest* req,
                                    prism::v1::BatchDeleteResponse* resp) {
  PRISM_PG_CALL(ctx, req, {
    DbSpan span(options_.tracer, parent, call.Op("BATCH DELETE", kDelete, req->keys_size()));
    if (auto st = call.Start(span, "BEGIN"); !st.ok()) return prism::plugin::ToGrpcStatus(st);
    int64_t n = 0;
    for (const auto& key : req->keys()) {
      Params p(req->namespace_(), key);
      auto r = call.Run(span, kDelete, p.v, p.l);
      if (!r.ok()) {
        call.Rollback(span);
        return prism::plugin::ToGrpcStatus(r.status());
      }
      n += std::atoi(PQcmdTuples(r->get())) > 0;
    }
    if (auto st = call.Command(span, "COMMIT"); !st.ok()) {
      call.Rollback(span);
      return prism::plugin::ToGrpcStatus(st);
    }
    resp->set_deleted(n);
    return grpc::Status::OK;
  });
}

}  // namespace prism::postgres
