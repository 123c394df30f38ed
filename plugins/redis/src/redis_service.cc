#include "redis_service.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>

#include <cerrno>
#include <climits>
#include <cstring>
#include <deque>
#include <functional>
#include <vector>

#include "prism/grpc_tracing/server.h"
#include "prism/plugin/db_span.h"
#include "prism/plugin/log.h"
#include "prism/plugin/status.h"
#include "prism/plugin/validation.h"
#include "redis_command.h"

namespace prism::redis {
namespace {

using Clock = std::chrono::steady_clock;
using prism::plugin::DbOperation;
using prism::plugin::DbSpan;
using prism::tracing::SpanContext;

struct ReplyDeleter {
  void operator()(redisReply* r) const {
    if (r) freeReplyObject(r);
  }
};
using ReplyPtr = std::unique_ptr<redisReply, ReplyDeleter>;

enum class Io { kOk, kTimeout, kError, kTooLarge };

// The most one reply may bring in: the gRPC message limit of a plugin. A
// BatchGet can name one 4 MiB value 1000 times; past this the reply is not
// read on (RESOURCE_EXHAUSTED) instead of being buffered whole.
constexpr size_t kMaxReplyBytes = prism::plugin::kMaxMessageBytes;

// Waits until `fd` is ready for `events` or `deadline` passes (false).
bool WaitFd(int fd, short events, Clock::time_point deadline) {
  for (;;) {
    auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (left <= 0) return false;
    pollfd p{fd, events, 0};
    int r = poll(&p, 1, static_cast<int>(std::min<int64_t>(left, INT_MAX)));
    if (r > 0) return true;  // also POLLERR/POLLHUP: the next read or write reports it
    if (r < 0 && errno != EINTR) return true;
  }
}

// Writes everything hiredis has buffered.
Io Flush(redisContext* c, Clock::time_point deadline) {
  int done = 0;
  for (;;) {
    if (redisBufferWrite(c, &done) != REDIS_OK) return Io::kError;
    if (done) return Io::kOk;
    if (!WaitFd(c->fd, POLLOUT, deadline)) return Io::kTimeout;
  }
}

// Reads one reply of at most kMaxReplyBytes.
Io ReadReply(redisContext* c, Clock::time_point deadline, ReplyPtr* out) {
  size_t received = 0;
  for (;;) {
    void* r = nullptr;
    if (redisGetReplyFromReader(c, &r) != REDIS_OK) return Io::kError;
    if (r) {
      out->reset(static_cast<redisReply*>(r));
      return Io::kOk;
    }
    if (!WaitFd(c->fd, POLLIN, deadline)) return Io::kTimeout;
    size_t before = c->reader->len;  // only a read changes it in between
    if (redisBufferRead(c) != REDIS_OK) return Io::kError;
    received += c->reader->len - before;
    if (received > kMaxReplyBytes) return Io::kTooLarge;
  }
}

// An idle connection has nothing to read: readable means the server closed
// it (a restart) or broke the protocol. Checked before reuse, so a command is
// never sent on a dead connection (and never resent after a failure).
bool IdleConnectionIsDead(redisContext* c) {
  if (c->err) return true;
  pollfd p{c->fd, POLLIN, 0};
  return poll(&p, 1, 0) != 0;
}

Clock::time_point SteadyDeadline(std::chrono::system_clock::time_point deadline,
                                 int default_timeout_ms) {
  auto now = Clock::now();
  if (deadline == std::chrono::system_clock::time_point::max()) {
    return now + std::chrono::milliseconds(default_timeout_ms);
  }
  return now +
         std::chrono::duration_cast<Clock::duration>(deadline - std::chrono::system_clock::now());
}

std::string ReplyTypeName(int type) {
  switch (type) {
    case REDIS_REPLY_STRING:
      return "string";
    case REDIS_REPLY_ARRAY:
      return "array";
    case REDIS_REPLY_INTEGER:
      return "integer";
    case REDIS_REPLY_NIL:
      return "nil";
    case REDIS_REPLY_STATUS:
      return "status";
    case REDIS_REPLY_ERROR:
      return "error";
    default:
      return "type " + std::to_string(type);
  }
}

}  // namespace

Connection::~Connection() { Drop(); }

void Connection::Drop() {
  if (ctx) redisFree(ctx);
  ctx = nullptr;
}

// One command of one call.
struct RedisService::Call {
  grpc::ServerContext* ctx;
  SpanContext parent;
  Connection* conn;
  std::vector<const char*> argv;
  std::vector<size_t> lens;
  ValueArgs values = ValueArgs::kNone;
  int64_t batch = 0;  // db.operation.batch.size (items of a KV batch)
  // Turns the (non-error) reply into the response; the span is still open.
  std::function<grpc::Status(const redisReply&, DbSpan&)> on_reply;

  std::deque<std::string> keys;  // the Redis keys argv points into (stable addresses)

  void Add(std::string_view arg) {
    argv.push_back(arg.data());
    lens.push_back(arg.size());
  }
  void AddKey(std::string_view ns, std::string_view key) {
    Add(keys.emplace_back(RedisKey(ns, key)));
  }
  std::string_view command() const { return std::string_view(argv[0], lens[0]); }
};

absl::StatusOr<std::unique_ptr<RedisService>> RedisService::Open(RedisOptions options) {
  if (options.pool_size < 1) return absl::InvalidArgumentError("pool size must be at least 1");
  std::unique_ptr<RedisService> s(new RedisService());
  s->o_ = std::move(options);
  s->db_text_ = std::to_string(s->o_.db);
  std::vector<std::unique_ptr<Connection>> conns;
  for (int i = 0; i < s->o_.pool_size; ++i) conns.push_back(std::make_unique<Connection>());
  // Connect eagerly, so the first calls do not pay for it and CLIENT LIST
  // shows the plugin as soon as it serves.
  std::string unreachable;
  for (auto& c : conns) {
    absl::Status st = s->Connect(
        *c, Clock::now() + std::chrono::milliseconds(s->o_.connect_timeout_ms), SpanContext());
    if (st.ok()) continue;
    if (st.code() != absl::StatusCode::kUnavailable &&
        st.code() != absl::StatusCode::kDeadlineExceeded) {
      return absl::FailedPreconditionError(std::string(st.message()));  // refused settings
    }
    unreachable = std::string(st.message());
    break;  // the others would fail the same way
  }
  if (!unreachable.empty()) {
    prism::plugin::Log(prism::plugin::LogLevel::kWarn,
                       unreachable + "; serving anyway: calls answer UNAVAILABLE until it is up");
  }
  s->pool_ =
      std::make_unique<prism::plugin::Pool<Connection>>("redis", std::move(conns), s->o_.tracer);
  return s;
}

absl::Status RedisService::Connect(Connection& c, Clock::time_point deadline,
                                   const SpanContext& parent) {
  c.Drop();
  auto connect_deadline =
      std::min(deadline, Clock::now() + std::chrono::milliseconds(o_.connect_timeout_ms));
  prism::tracing::Span span;
  if (parent.IsValid() && o_.tracer.enabled()) {
    prism::tracing::StartSpanOptions so;
    so.kind = prism::tracing::SpanKind::kClient;
    so.parent = parent;
    so.attributes.push_back({"db.system.name", std::string("redis")});
    so.attributes.push_back({"db.namespace", db_text_});
    so.attributes.push_back({"server.address", o_.host});
    so.attributes.push_back({"server.port", int64_t{o_.port}});
    span = o_.tracer.StartSpan("redis.connect", std::move(so));
  }
  std::string where = "redis at " + o_.host + ":" + std::to_string(o_.port);
  auto fail = [&](absl::Status st) {
    c.Drop();
    if (span.IsRecording()) {
      span.SetAttribute("error.type", absl::StatusCodeToString(st.code()));
      span.SetStatus(prism::tracing::StatusCode::kError,
                     std::string_view(st.message().data(), st.message().size()));
    }
    return st;
  };
  c.ctx = redisConnectNonBlock(o_.host.c_str(), o_.port);
  if (!c.ctx) return fail(absl::ResourceExhaustedError(where + ": cannot allocate a context"));
  if (c.ctx->err) {
    return fail(absl::UnavailableError(where + " is unavailable: " + c.ctx->errstr));
  }
  if (!WaitFd(c.ctx->fd, POLLOUT, connect_deadline)) {
    return fail(absl::DeadlineExceededError("deadline exceeded connecting to " + where));
  }
  int so_error = 0;
  socklen_t len = sizeof so_error;
  if (getsockopt(c.ctx->fd, SOL_SOCKET, SO_ERROR, &so_error, &len) != 0) so_error = errno;
  if (so_error != 0) {
    return fail(absl::UnavailableError(where + " is unavailable: " + std::strerror(so_error)));
  }
  int one = 1;
  setsockopt(c.ctx->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  // The session setup, pipelined: one round trip whatever it holds.
  std::vector<std::vector<std::string>> setup;
  if (!o_.password.empty()) {
    if (o_.user.empty()) {
      setup.push_back({"AUTH", o_.password});
    } else {
      setup.push_back({"AUTH", o_.user, o_.password});
    }
  }
  if (o_.db != 0) setup.push_back({"SELECT", db_text_});
  if (!o_.client_name.empty()) setup.push_back({"CLIENT", "SETNAME", o_.client_name});
  for (const auto& cmd : setup) {
    std::vector<const char*> argv;
    std::vector<size_t> lens;
    for (const auto& a : cmd) {
      argv.push_back(a.data());
      lens.push_back(a.size());
    }
    redisAppendCommandArgv(c.ctx, static_cast<int>(argv.size()), argv.data(), lens.data());
  }
  Io io = Flush(c.ctx, deadline);
  for (size_t i = 0; io == Io::kOk && i < setup.size(); ++i) {
    ReplyPtr reply;
    io = ReadReply(c.ctx, deadline, &reply);
    if (io == Io::kOk && reply->type == REDIS_REPLY_ERROR) {
      // AUTH's arguments never reach a message; Redis's reply names no secret.
      std::string what = setup[i][0] == "CLIENT" ? "CLIENT SETNAME" : setup[i][0];
      grpc::Status st =
          StatusForErrorReply(what, std::string_view(reply->str, static_cast<size_t>(reply->len)));
      return fail(absl::Status(static_cast<absl::StatusCode>(st.error_code()),
                               where + ": " + st.error_message()));
    }
  }
  if (io == Io::kTimeout) {
    return fail(
        absl::DeadlineExceededError("deadline exceeded setting up the connection to " + where));
  }
  if (io != Io::kOk) {
    return fail(absl::UnavailableError(where + " is unavailable: " + c.ctx->errstr));
  }
  connects_.fetch_add(1, std::memory_order_relaxed);
  return absl::OkStatus();
}

grpc::Status RedisService::Run(Call& call) {
  Clock::time_point deadline = SteadyDeadline(call.ctx->deadline(), o_.command_timeout_ms);
  Connection& c = *call.conn;
  if (c.ctx && IdleConnectionIsDead(c.ctx)) c.Drop();
  if (!c.ctx) {
    absl::Status st = Connect(c, deadline, call.parent);
    if (!st.ok()) return prism::plugin::ToGrpcStatus(st);
  }
  std::string_view command = call.command();
  DbOperation op;
  op.system = "redis";
  op.operation = command;
  op.server_address = o_.host;
  op.server_port = o_.port;
  op.batch_size = call.batch;
  // db.namespace is set below, not in `op`: DbSpan would put it in the span
  // name, which the Redis conventions advise against (it is just a number).
  DbSpan span(o_.tracer, call.parent, op);
  if (span.span().IsRecording()) {
    span.span().SetAttribute("db.namespace", db_text_);
    std::vector<std::string_view> args;
    args.reserve(call.argv.size());
    for (size_t i = 0; i < call.argv.size(); ++i) args.emplace_back(call.argv[i], call.lens[i]);
    span.span().SetAttribute("db.query.text", QueryText(args, call.values));
  }
  redisAppendCommandArgv(c.ctx, static_cast<int>(call.argv.size()), call.argv.data(),
                         call.lens.data());
  ReplyPtr reply;
  Io io = Flush(c.ctx, deadline);
  if (io == Io::kOk) io = ReadReply(c.ctx, deadline, &reply);
  if (io != Io::kOk) {
    // The stream is out of step (a reply may still come): never reuse it.
    std::string where = "redis at " + o_.host + ":" + std::to_string(o_.port);
    grpc::Status st;
    if (io == Io::kTimeout) {
      st = grpc::Status(
          grpc::StatusCode::DEADLINE_EXCEEDED,
          "deadline exceeded waiting for " + where + " (" + std::string(command) + ")");
    } else if (io == Io::kTooLarge) {
      st = grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                        "redis " + std::string(command) + ": the reply is larger than " +
                            std::to_string(kMaxReplyBytes >> 20) +
                            " MiB, the limit of one response");
    } else {
      st = grpc::Status(grpc::StatusCode::UNAVAILABLE, where + " is unavailable: " + c.ctx->errstr +
                                                           " (" + std::string(command) + ")");
    }
    if (io == Io::kTimeout) {
      if (span.span().IsRecording()) {
        span.span().SetAttribute("error.type", std::string_view("timeout"));
        span.span().SetStatus(prism::tracing::StatusCode::kError, st.error_message());
      }
    } else {
      span.SetError("", st.error_message());
    }
    c.Drop();
    return st;
  }
  if (reply->type == REDIS_REPLY_ERROR) {
    std::string_view text(reply->str, static_cast<size_t>(reply->len));
    grpc::Status st = StatusForErrorReply(command, text);
    span.SetError(ErrorPrefix(text), st.error_message());
    return st;
  }
  grpc::Status st = call.on_reply(*reply, span);
  if (!st.ok()) span.SetError("", st.error_message());
  return st;
}

namespace {
grpc::Status Unexpected(std::string_view command, const redisReply& r) {
  return grpc::Status(
      grpc::StatusCode::INTERNAL,
      "redis " + std::string(command) + ": unexpected " + ReplyTypeName(r.type) + " reply");
}
}  // namespace

// Validates, checks the deadline, takes a connection (a pool.acquire span),
// lets `fill` add the command and its reply handler, and runs it.
template <typename Request, typename Fill>
grpc::Status RedisService::Serve(grpc::ServerContext* ctx, const Request& req, Fill&& fill) {
  if (grpc::Status st = prism::plugin::Validate(req); !st.ok()) return st;
  if (grpc::Status st = prism::plugin::CheckDeadline(*ctx); !st.ok()) return st;
  Call call;
  call.ctx = ctx;
  call.parent = prism::grpc_tracing::ServerSpanContext(ctx);
  auto lease = pool_->Acquire(call.parent, ctx->deadline());
  if (!lease.ok()) return prism::plugin::ToGrpcStatus(lease.status());
  call.conn = lease->get();
  fill(call);
  return Run(call);
}

grpc::Status RedisService::Get(grpc::ServerContext* ctx, const prism::v1::GetRequest* req,
                               prism::v1::GetResponse* resp) {
  return Serve(ctx, *req, [&](Call& call) {
    call.Add("GET");
    call.AddKey(req->namespace_(), req->key());
    call.on_reply = [resp](const redisReply& r, DbSpan& span) {
      if (r.type == REDIS_REPLY_NIL) {
        resp->set_found(false);
      } else if (r.type == REDIS_REPLY_STRING) {
        resp->set_found(true);
        resp->set_value(r.str, static_cast<size_t>(r.len));
      } else {
        return Unexpected("GET", r);
      }
      span.SetReturnedRows(resp->found() ? 1 : 0);
      return grpc::Status::OK;
    };
  });
}

grpc::Status RedisService::Set(grpc::ServerContext* ctx, const prism::v1::SetRequest* req,
                               prism::v1::SetResponse*) {
  return Serve(ctx, *req, [&](Call& call) {
    call.Add("SET");
    call.AddKey(req->namespace_(), req->key());
    call.Add(req->value());
    call.values = ValueArgs::kThird;
    call.on_reply = [](const redisReply& r, DbSpan&) {
      return r.type == REDIS_REPLY_STATUS ? grpc::Status::OK : Unexpected("SET", r);
    };
  });
}

grpc::Status RedisService::Delete(grpc::ServerContext* ctx, const prism::v1::DeleteRequest* req,
                                  prism::v1::DeleteResponse* resp) {
  return Serve(ctx, *req, [&](Call& call) {
    call.Add("DEL");
    call.AddKey(req->namespace_(), req->key());
    call.on_reply = [resp](const redisReply& r, DbSpan&) {
      if (r.type != REDIS_REPLY_INTEGER) return Unexpected("DEL", r);
      resp->set_deleted(r.integer > 0);
      return grpc::Status::OK;
    };
  });
}

grpc::Status RedisService::Exists(grpc::ServerContext* ctx, const prism::v1::ExistsRequest* req,
                                  prism::v1::ExistsResponse* resp) {
  return Serve(ctx, *req, [&](Call& call) {
    call.Add("EXISTS");
    call.AddKey(req->namespace_(), req->key());
    call.on_reply = [resp](const redisReply& r, DbSpan& span) {
      if (r.type != REDIS_REPLY_INTEGER) return Unexpected("EXISTS", r);
      resp->set_exists(r.integer > 0);
      span.SetReturnedRows(resp->exists() ? 1 : 0);
      return grpc::Status::OK;
    };
  });
}

// The batch forms are one variadic command each (MGET, MSET, DEL): one round
// trip, and atomic, since Redis runs a command alone (see docs/plugins.md).
grpc::Status RedisService::BatchGet(grpc::ServerContext* ctx, const prism::v1::BatchGetRequest* req,
                                    prism::v1::BatchGetResponse* resp) {
  return Serve(ctx, *req, [&](Call& call) {
    call.Add("MGET");
    for (const auto& k : req->keys()) call.AddKey(req->namespace_(), k);
    call.batch = req->keys_size();
    call.on_reply = [resp, n = static_cast<size_t>(req->keys_size())](const redisReply& r,
                                                                      DbSpan& span) {
      if (r.type != REDIS_REPLY_ARRAY || r.elements != n) return Unexpected("MGET", r);
      int64_t rows = 0;
      for (size_t i = 0; i < r.elements; ++i) {
        const redisReply& e = *r.element[i];
        auto* out = resp->add_results();
        if (e.type == REDIS_REPLY_STRING) {
          out->set_found(true);
          out->set_value(e.str, static_cast<size_t>(e.len));
          ++rows;
        } else if (e.type != REDIS_REPLY_NIL) {
          resp->Clear();
          return Unexpected("MGET", e);
        }
      }
      span.SetReturnedRows(rows);
      return grpc::Status::OK;
    };
  });
}

grpc::Status RedisService::BatchSet(grpc::ServerContext* ctx, const prism::v1::BatchSetRequest* req,
                                    prism::v1::BatchSetResponse*) {
  return Serve(ctx, *req, [&](Call& call) {
    call.Add("MSET");
    for (const auto& it : req->items()) {
      call.AddKey(req->namespace_(), it.key());
      call.Add(it.value());
    }
    call.values = ValueArgs::kEverySecondFromThird;
    call.batch = req->items_size();
    call.on_reply = [](const redisReply& r, DbSpan&) {
      return r.type == REDIS_REPLY_STATUS ? grpc::Status::OK : Unexpected("MSET", r);
    };
  });
}

grpc::Status RedisService::BatchDelete(grpc::ServerContext* ctx,
                                       const prism::v1::BatchDeleteRequest* req,
                                       prism::v1::BatchDeleteResponse* resp) {
  return Serve(ctx, *req, [&](Call& call) {
    call.Add("DEL");
    for (const auto& k : req->keys()) call.AddKey(req->namespace_(), k);
    call.batch = req->keys_size();
    call.on_reply = [resp](const redisReply& r, DbSpan&) {
      if (r.type != REDIS_REPLY_INTEGER) return Unexpected("DEL", r);
      resp->set_deleted(r.integer);
      return grpc::Status::OK;
    };
  });
}

}  // namespace prism::redis
