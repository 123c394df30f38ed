#!/usr/bin/env bash
# Get and Set through loadgen -> prism-proxy -> prism-plugin-postgres ->
# PostgreSQL (a throwaway server, plugins/postgres/scripts/throwaway-postgres.sh),
# side by side in one run. Paths (one proxy + plugin each, all up at once):
#   off              tracing off (OTEL_SDK_DISABLED): no span, no comment,
#                    prepared statements
#   on_prep          always_on, sqlcommenter off, prepared statements
#   on_unnamed       always_on, sqlcommenter off, unnamed statements (PQexecParams)
#   on_comment       always_on, sqlcommenter on (the default): unnamed + comment
#   on_comment_prep  always_on, sqlcommenter on, prepared per call (statements=prepare-each)
# Rounds interleave the paths in a rotated order; the figures that matter are
# the per-round ratios and their medians (the shared VM drifts by tens of %).
# Usage: scripts/bench-proxy-postgres.sh [BUILD_DIR] [--record]
# Then, on the same server, build/bench/prism_bench_pg_statements (one libpq
# connection, no proxy: the statements alone, with the server backend's own
# CPU time per statement, which the machine's noise does not inflate).
#   env: ROUNDS (default 8), DURATION (s per run, default 1), CONCURRENCY (default 8),
#        STMT_REPS (statement benchmark repetitions, default 10; 0: skip it)
# --record appends the tables to docs/benchmarks.md under "## PostgreSQL".
set -euo pipefail
DURATION=${DURATION:-1}
CONCURRENCY=${CONCURRENCY:-8}
ROUNDS=${ROUNDS:-8}
STMT_REPS=${STMT_REPS:-10}
[ "$STMT_REPS" = 1 ] && STMT_REPS=2  # medians need two repetitions
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=scripts/bench-common.sh
source "$ROOT/scripts/bench-common.sh"
bench_args "$@"
bench_need prism-proxy prism-plugin-postgres prism-loadgen
[ "$STMT_REPS" = 0 ] || bench_need ../bench/prism_bench_pg_statements
STMT_BENCH="$BUILD/bench/prism_bench_pg_statements"
PG=$ROOT/plugins/postgres/scripts/throwaway-postgres.sh
WORK=$(mktemp -d "${TMPDIR:-/tmp}/prism-bench-pg-XXXXXX")
PIDS=()
PGDIR=""
cleanup() {
  stop_pids
  [ -n "$PGDIR" ] && "$PG" destroy "$PGDIR"
  rm -rf "$WORK"
}
trap cleanup EXIT

PGENV=$("$PG" start --owner-pid $$)
PGDIR=$(echo "$PGENV" | sed -n 's/^DIR=//p')
CONNINFO=$(echo "$PGENV" | sed -n 's/^CONNINFO=//p')

declare -A ADDR PID
start_proxy() {  # path tracing-mode sqlcommenter statements
  local path=$1 port
  port=$(free_port)
  proxy_setup "$WORK/$path" "$port" "$2"
  cat >"$WORK/$path/prism.yaml" <<YAML
listen: 127.0.0.1:$port
namespaces:
  default:
    plugin:
      command: [prism-plugin-postgres]
      settings: {conninfo: "$CONNINFO", table: bench_$path, pool-size: "4", sqlcommenter: "$3", statements: "$4"}
YAML
  "${PROXY_ENV[@]}" "$BIN/prism-proxy" --config "$WORK/$path/prism.yaml" \
    >"$WORK/$path/proxy.out" 2>"$WORK/$path/proxy.log" &
  PID[$path]=$!
  PIDS+=("${PID[$path]}")
  ADDR[$path]="127.0.0.1:$port"
  wait_serving "${ADDR[$path]}" 20
}
PATHS=(off on_prep on_unnamed on_comment on_comment_prep)
start_proxy off off on auto
start_proxy on_prep on off auto
start_proxy on_unnamed on off unnamed
start_proxy on_comment on on auto
start_proxy on_comment_prep on on prepare-each

RESULTS="$WORK/results.tsv"  # round path op calls_per_sec p50 p99
: >"$RESULTS"
run() {  # round path op
  local j
  j=$("$BIN/prism-loadgen" -a "${ADDR[$2]}" -c "$CONCURRENCY" -d "$DURATION" -w 0.3 --op "$3" --json)
  python3 -c 'import json,sys; j=json.loads(sys.argv[1]); print("\t".join(sys.argv[2:5]+[str(j["calls_per_sec"]),str(j["p50_us"]),str(j["p99_us"])]))' \
    "$j" "$1" "$2" "$3" >>"$RESULTS"
}

echo "bench-proxy-postgres: Get and Set, $CONCURRENCY in flight, ${DURATION}s per run, $ROUNDS rounds, $(nproc) CPUs"
for round in $(seq 1 "$ROUNDS"); do
  n=${#PATHS[@]}
  for op in get set; do
    for ((i = 0; i < n; i++)); do
      run "$round" "${PATHS[$(( (i + round - 1) % n ))]}" "$op"
    done
  done
  for p in "${PATHS[@]}"; do : >"$WORK/$p/traces.jsonl"; done
  printf '.'
done
echo

TABLE=$(mktemp)
python3 - "$RESULTS" "$CONCURRENCY" >"$TABLE" <<'PY'
import collections, statistics, sys
rows = [l.split("\t") for l in open(sys.argv[1]).read().splitlines()]
R = collections.defaultdict(dict)  # (round, op) -> path -> row
for rnd, path, op, rate, p50, p99 in rows:
    R[(int(rnd), op)][path] = dict(rate=float(rate), p50=float(p50), p99=float(p99))
med = statistics.median
def series(op, path, key):
    return [R[k][path][key] for k in sorted(R) if k[1] == op and path in R[k]]
def paired(op, a, b, key):
    return [R[k][a][key] / R[k][b][key] for k in sorted(R) if k[1] == op and a in R[k] and b in R[k]]
def q(xs):
    xs = sorted(xs); n = len(xs)
    return med(xs), xs[n // 4], xs[(3 * n) // 4]
names = {"off": "off (OTEL_SDK_DISABLED); prepared",
         "on_prep": "always_on; comment off; prepared",
         "on_unnamed": "always_on; comment off; unnamed (PQexecParams)",
         "on_comment": "always_on; comment on; unnamed + comment (default)",
         "on_comment_prep": "always_on; comment on; prepared per call (prepare-each)"}
n = len(series("get", "off", "rate"))
print(f"Medians over {n} rounds, {sys.argv[2]} in flight, loadgen → proxy → postgres plugin → PostgreSQL 15:\n")
print("| op | path | calls/s | p50 (µs) | p99 (µs) |")
print("|---|---|---:|---:|---:|")
for op in ("get", "set"):
    for p in names:
        print(f"| {op.capitalize()} | {names[p]} | {med(series(op, p, 'rate')):.0f} | "
              f"{med(series(op, p, 'p50')):.0f} | {med(series(op, p, 'p99')):.0f} |")
print("\nPaired per round (calls/s ratio), median [interquartile range]:\n")
print("| comparison | Get | Set |")
print("|---|---:|---:|")
pct = lambda x: f"{100 * (x - 1):+.1f}%"
for label, a, b in (("tracing on vs off (both prepared, no comment)", "on_prep", "off"),
                    ("unnamed vs prepared (tracing on, no comment)", "on_unnamed", "on_prep"),
                    ("comment on vs off, unnamed statements", "on_comment", "on_unnamed"),
                    ("comment on vs off, prepared statements (prepared per call vs once)", "on_comment_prep", "on_prep"),
                    ("default (unnamed + comment) vs tracing off", "on_comment", "off")):
    cells = []
    for op in ("get", "set"):
        m, lo, hi = q(paired(op, a, b, "rate"))
        cells.append(f"**{pct(m)}** [{pct(lo)} … {pct(hi)}]")
    print(f"| {label} | {cells[0]} | {cells[1]} |")
PY
if [ "$STMT_REPS" != 0 ]; then
  PRISM_PG_CONNINFO="$CONNINFO" "$STMT_BENCH" --benchmark_repetitions="$STMT_REPS" \
    --benchmark_enable_random_interleaving=true --benchmark_report_aggregates_only=true \
    --benchmark_format=json >"$WORK/stmt.json" 2>"$WORK/stmt.err" ||
    { cat "$WORK/stmt.err" >&2; exit 1; }
  python3 - "$WORK/stmt.json" "$STMT_REPS" >>"$TABLE" <<'PY'
import json, sys
b = {x["run_name"].split("/")[0]: x for x in json.load(open(sys.argv[1]))["benchmarks"]
     if x.get("aggregate_name") == "median"}
print(f"\nThe statements alone (prism_bench_pg_statements: one connection, no proxy), medians of {sys.argv[2]} "
      "interleaved repetitions; server CPU = the PostgreSQL backend's CPU time per statement "
      "(/proc/PID/schedstat):\n")
print("| statement | Get: wall µs | Get: server CPU µs | Set: wall µs | Set: server CPU µs |")
print("|---|---:|---:|---:|---:|")
for mode, label in (("prepared", "named prepared statement, no comment"),
                    ("unnamed", "unnamed (PQexecParams), no comment"),
                    ("unnamed_comment", "unnamed + traceparent comment (default for sampled calls)"),
                    ("prepare_each", "prepared per call + comment (PQprepare + PQexecPrepared)")):
    g, s = b[f"BM_Get_{mode}"], b[f"BM_Set_{mode}"]
    cell = lambda x: f"{x['real_time'] / 1e3:.1f} | {x.get('server_cpu_us', float('nan')):.1f}"
    print(f"| {label} | {cell(g)} | {cell(s)} |")
c = b["BM_CommentBuild"]
print(f"\nBuilding the comment (TraceComment + AppendSqlComment, client side): {c['cpu_time']:.0f} ns CPU.")
PY
fi
echo
cat "$TABLE"
if [ "$RECORD" = 1 ]; then
  DOC="$ROOT/docs/benchmarks.md"
  grep -q '^## PostgreSQL' "$DOC" || printf '\n## PostgreSQL\n' >>"$DOC"
  {
    echo
    echo "### $(date -u '+%Y-%m-%d %H:%M') UTC — $(nproc) CPUs, $ROUNDS rounds × ${DURATION}s per run"
    echo
    echo "Command: \`ROUNDS=$ROUNDS DURATION=$DURATION CONCURRENCY=$CONCURRENCY scripts/bench-proxy-postgres.sh build --record\`"
    echo
    cat "$TABLE"
  } >>"$DOC"
fi
rm -f "$TABLE"
