// What the sqlcommenter comment costs at the statement, one libpq
// connection, no proxy, no gRPC: the plugin's Get and Set statements as
//   prepared          named prepared statement, no comment (the plugin's
//                     unsampled path)
//   unnamed           PQexecParams, no comment
//   unnamed_comment   PQexecParams with a traceparent comment, a new span id
//                     per call (the plugin's default for sampled calls)
//   prepare_each      PQprepare + PQexecPrepared of the commented text (what
//                     a driver that prepares every text pays)
// plus building the comment itself. Needs PRISM_PG_CONNINFO (a throwaway
// server: plugins/postgres/scripts/throwaway-postgres.sh). Run with
// --benchmark_enable_random_interleaving=true so the variants share the
// machine's moods.
#include <benchmark/benchmark.h>
#include <libpq-fe.h>

#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>

#include "prism/tracing/ids.h"
#include "prism/tracing/propagation.h"
#include "sqlcommenter.h"

namespace {

using prism::postgres::AppendSqlComment;
using prism::postgres::TraceComment;

const char* kGet = "SELECT value FROM bench_stmt WHERE ns = $1 AND key = $2";
const char* kSet =
    "INSERT INTO bench_stmt (ns, key, value) VALUES ($1, $2, $3) "
    "ON CONFLICT (ns, key) DO UPDATE SET value = EXCLUDED.value";

PGconn* Conn() {
  static PGconn* c = [] {
    const char* info = std::getenv("PRISM_PG_CONNINFO");
    PGconn* conn = PQconnectdb(info ? info : "");
    if (PQstatus(conn) != CONNECTION_OK) return static_cast<PGconn*>(nullptr);
    PQclear(PQexec(conn,
                   "CREATE TABLE IF NOT EXISTS bench_stmt (ns text NOT NULL, key text NOT NULL, "
                   "value bytea NOT NULL, PRIMARY KEY (ns, key))"));
    PQclear(PQexec(conn, "INSERT INTO bench_stmt VALUES ('ns', 'k', 'v') ON CONFLICT DO NOTHING"));
    PQclear(PQprepare(conn, "get", kGet, 2, nullptr));
    PQclear(PQprepare(conn, "set", kSet, 3, nullptr));
    return conn;
  }();
  return c;
}

// A sampled span context with a fresh span id each call.
std::string Comment(std::mt19937_64& rng, const std::string& sql) {
  uint64_t hi = rng(), lo = rng(), span = rng() | 1;
  char tp[56];
  std::snprintf(tp, sizeof tp, "00-%016llx%016llx-%016llx-01", (unsigned long long)hi,
                (unsigned long long)lo, (unsigned long long)span);
  auto ctx = prism::tracing::w3c::ParseTraceparent(tp);
  return AppendSqlComment(sql, TraceComment(*ctx, 1024 - sql.size() - 2));
}

// CPU time the server's backend process has used, in ns (/proc/PID/schedstat:
// nanosecond resolution, unlike /proc/PID/stat's ticks); -1 if unreadable.
int64_t BackendCpuNs(PGconn* c) {
  std::string path = "/proc/" + std::to_string(PQbackendPID(c)) + "/schedstat";
  FILE* f = std::fopen(path.c_str(), "r");
  if (!f) return -1;
  long long ns = -1;
  if (std::fscanf(f, "%lld", &ns) != 1) ns = -1;
  std::fclose(f);
  return ns;
}

enum Mode { kPrepared, kUnnamed, kUnnamedComment, kPrepareEach };

void Run(benchmark::State& state, bool set, Mode mode) {
  PGconn* c = Conn();
  if (!c) {
    state.SkipWithError("no PostgreSQL: set PRISM_PG_CONNINFO");
    return;
  }
  std::mt19937_64 rng(42);
  const std::string value(100, 'v');
  const char* vals[3] = {"ns", "k", value.data()};
  int lens[3] = {2, 1, static_cast<int>(value.size())};
  int fmts[3] = {1, 1, 1};
  const int n = set ? 3 : 2;
  const std::string sql = set ? kSet : kGet;
  const int64_t cpu0 = BackendCpuNs(c);
  for (auto _ : state) {
    PGresult* r = nullptr;
    switch (mode) {
      case kPrepared:
        r = PQexecPrepared(c, set ? "set" : "get", n, vals, lens, fmts, 1);
        break;
      case kUnnamed:
        r = PQexecParams(c, sql.c_str(), n, nullptr, vals, lens, fmts, 1);
        break;
      case kUnnamedComment: {
        std::string text = Comment(rng, sql);
        r = PQexecParams(c, text.c_str(), n, nullptr, vals, lens, fmts, 1);
        break;
      }
      case kPrepareEach: {
        std::string text = Comment(rng, sql);
        PQclear(PQprepare(c, "", text.c_str(), n, nullptr));
        r = PQexecPrepared(c, "", n, vals, lens, fmts, 1);
        break;
      }
    }
    ExecStatusType st = PQresultStatus(r);
    if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK) {
      state.SkipWithError(PQerrorMessage(c));
      PQclear(r);
      return;
    }
    PQclear(r);
  }
  const int64_t cpu1 = BackendCpuNs(c);
  if (cpu0 >= 0 && cpu1 >= 0 && state.iterations() > 0) {
    // The server's work per statement, apart from the waits a busy machine adds.
    state.counters["server_cpu_us"] = (cpu1 - cpu0) / 1e3 / static_cast<double>(state.iterations());
  }
}

void BM_CommentBuild(benchmark::State& state) {
  std::mt19937_64 rng(1);
  const std::string sql = kSet;
  for (auto _ : state) benchmark::DoNotOptimize(Comment(rng, sql));
}
BENCHMARK(BM_CommentBuild);

#define PRISM_PG_BENCH(name, set, mode)                         \
  void name(benchmark::State& state) { Run(state, set, mode); } \
  BENCHMARK(name)->UseRealTime()->MinTime(0.5)
PRISM_PG_BENCH(BM_Get_prepared, false, kPrepared);
PRISM_PG_BENCH(BM_Get_unnamed, false, kUnnamed);
PRISM_PG_BENCH(BM_Get_unnamed_comment, false, kUnnamedComment);
PRISM_PG_BENCH(BM_Get_prepare_each, false, kPrepareEach);
PRISM_PG_BENCH(BM_Set_prepared, true, kPrepared);
PRISM_PG_BENCH(BM_Set_unnamed, true, kUnnamed);
PRISM_PG_BENCH(BM_Set_unnamed_comment, true, kUnnamedComment);
PRISM_PG_BENCH(BM_Set_prepare_each, true, kPrepareEach);

}  // namespace

BENCHMARK_MAIN();
