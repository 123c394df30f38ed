#!/usr/bin/env bash
# Side-by-side Get benchmark with prism-loadgen, in one run:
#   direct   loadgen -> prism-plugin-memstore (TCP loopback), tracing off
#   off      loadgen -> prism-proxy -> memstore, tracing off (OTEL_SDK_DISABLED)
#   ratio    the same, parentbased_traceidratio 0.01, trace file exporter
#   adaptive the same, prism_adaptive (every call recorded, decided at its
#            end, 1 % kept; docs/sampling.md), trace file exporter
#   on       the same, always_on, trace file exporter
#   recorded the same, always_on, no exporter (only with SPLIT=1): what
#            recording costs without the export
#   direct_tp loadgen -> memstore like "direct", every call carrying a fixed
#            W3C traceparent header (only with FLOOR=1): what gRPC charges
#            for the one header a traced proxy adds to its hop, before any
#            tracing code runs - the floor under "ratio"
# All servers start once and stay up; the runs are short and
# interleaved (each round runs every path once, in a rotated order), so
# every round compares the paths under the same machine conditions. The
# shared VM's speed drifts by tens of percent over seconds: the figures that
# matter are the per-round ratios and their median.
# Usage: scripts/bench-proxy.sh [BUILD_DIR] [--record]
#   env: ROUNDS (default 30), DURATION (s per run, default 1),
#        CONCURRENCY (default 32), SPLIT (1: add the "recorded" path),
#        FLOOR (1: add the "direct_tp" path),
#        BACKEND (memstore, or redis: a redis-server on a free port, no
#        persistence, behind prism-plugin-redis; "direct" is then
#        loadgen -> prism-plugin-redis -> redis), OP (get, or set: every
#        call a Set of a 64-byte value)
# --record appends the tables to docs/benchmarks.md under "## Proxy".
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${1:-build}
case "$BUILD" in /*) ;; *) BUILD="$ROOT/$BUILD" ;; esac
RECORD=0
[ "${2:-}" = "--record" ] && RECORD=1
BIN="$BUILD/bin"
BACKEND=${BACKEND:-memstore}
OP=${OP:-get}
for b in prism-proxy "prism-plugin-$BACKEND" prism-loadgen; do
  [ -x "$BIN/$b" ] || { echo "bench-proxy: $BIN/$b missing; build first" >&2; exit 1; }
done
DURATION=${DURATION:-1}
CONCURRENCY=${CONCURRENCY:-32}
ROUNDS=${ROUNDS:-30}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/prism-bench-XXXXXX")
PIDS=()
cleanup() {
  for p in "${PIDS[@]+"${PIDS[@]}"}"; do kill -TERM "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

# shellcheck source=scripts/bench-common.sh
source "$ROOT/scripts/bench-common.sh"

BACKEND_ARGS=()  # settings of the plugin, as flags
if [ "$BACKEND" = redis ]; then
  RPORT=$(free_port)
  redis-server --bind 127.0.0.1 --port "$RPORT" --save '' --appendonly no --dir "$WORK" \
    --logfile "$WORK/redis.log" &
  PIDS+=("$!")
  for _ in $(seq 1 100); do redis-cli -p "$RPORT" ping >/dev/null 2>&1 && break; sleep 0.1; done
  BACKEND_ARGS=(--port "$RPORT")
fi
PROXY_PLUGIN="[prism-plugin-$BACKEND$(printf ', %s' "${BACKEND_ARGS[@]+"${BACKEND_ARGS[@]}"}")]"
export PROXY_PLUGIN

declare -A ADDR PID
start_direct() {
  local port
  port=$(free_port)
  env OTEL_SDK_DISABLED=true "$BIN/prism-plugin-$BACKEND" \
    ${BACKEND_ARGS[@]+"${BACKEND_ARGS[@]}"} --listen "127.0.0.1:$port" \
    >"$WORK/$BACKEND.out" 2>"$WORK/$BACKEND.log" &
  PID[direct]=$!
  PIDS+=("${PID[direct]}")
  ADDR[direct]="127.0.0.1:$port"
  wait_serving "${ADDR[direct]}"
}

start_proxy() {  # mode
  local mode=$1 port
  port=$(free_port)
  proxy_setup "$WORK/$mode" "$port" "$mode"
  "${PROXY_ENV[@]}" "$BIN/prism-proxy" --config "$WORK/$mode/prism.yaml" \
    >"$WORK/$mode/proxy.out" 2>"$WORK/$mode/proxy.log" &
  PID[$mode]=$!
  PIDS+=("${PID[$mode]}")
  ADDR[$mode]="127.0.0.1:$port"
  wait_serving "${ADDR[$mode]}"
}

# CPU ticks (user+system) used so far by a process and its children.
cpu_of() {
  local total=0 p
  for p in "$1" $(pgrep -P "$1" 2>/dev/null); do
    if [ -r "/proc/$p/stat" ]; then
      total=$((total + $(awk '{print $14 + $15}' "/proc/$p/stat")))
    fi
  done
  echo "$total"
}

PATHS=(direct off ratio adaptive on)
[ "${SPLIT:-0}" = 1 ] && PATHS+=(recorded)
declare -A EXTRA  # path -> extra loadgen arguments
start_direct
for mode in "${PATHS[@]:1}"; do start_proxy "$mode"; done
if [ "${FLOOR:-0}" = 1 ]; then
  PATHS+=(direct_tp)
  ADDR[direct_tp]=${ADDR[direct]}
  PID[direct_tp]=${PID[direct]}
  EXTRA[direct_tp]="-m traceparent=00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"
fi

RESULTS="$WORK/results.tsv"  # round path concurrency calls_per_sec p50 p99 cpu_ticks calls client_cpu_us
: >"$RESULTS"
run() {  # round path concurrency
  local c0 c1 j
  c0=$(cpu_of "${PID[$2]}")
  # shellcheck disable=SC2086 # EXTRA holds separate arguments
  j=$("$BIN/prism-loadgen" -a "${ADDR[$2]}" -c "$3" -d "$DURATION" -w 0.3 --no-set --op "$OP" --json ${EXTRA[$2]:-}) ||
    { echo "bench-proxy: prism-loadgen failed on path $2: $j" >&2; exit 1; }
  c1=$(cpu_of "${PID[$2]}")
  # The CPU ticks cover the warm-up too: count its calls at the measured rate.
  python3 -c 'import json,sys; j=json.loads(sys.argv[1]); d=float(sys.argv[6]); print("\t".join(sys.argv[2:5]+[str(j["calls_per_sec"]),str(j["p50_us"]),str(j["p99_us"]),sys.argv[5],str(int(j["calls"]*(d+0.3)/d)),str(j["client_cpu_us_per_call"])]))' \
    "$j" "$1" "$2" "$3" "$((c1 - c0))" "$DURATION" >>"$RESULTS"
}

echo "bench-proxy: $OP on $BACKEND, $CONCURRENCY in flight (and 1 in flight), ${DURATION}s per run, $ROUNDS rounds, $(nproc) CPUs"
for round in $(seq 1 "$ROUNDS"); do
  n=${#PATHS[@]}
  for ((i = 0; i < n; i++)); do
    path=${PATHS[$(( (i + round - 1) % n ))]}
    run "$round" "$path" "$CONCURRENCY"
  done
  for ((i = 0; i < n; i++)); do
    path=${PATHS[$(( (i + round - 1) % n ))]}
    run "$round" "$path" 1
  done
  : >"$WORK/on/traces.jsonl"  # always_on writes ~4 kB per call; keep the disk quiet
  printf '.'
done
echo

TABLE=$(mktemp)
python3 - "$RESULTS" "$(getconf CLK_TCK)" "$CONCURRENCY" "$BACKEND" >"$TABLE" <<'PY'
import collections, statistics, sys
rows = [l.split("\t") for l in open(sys.argv[1]).read().splitlines()]
ticks, conc = int(sys.argv[2]), sys.argv[3]
R = collections.defaultdict(dict)  # (round, conc) -> path -> row
for rnd, path, c, rate, p50, p99, cpu, calls, ccpu in rows:
    srv = int(cpu) * 1e6 / ticks / max(int(calls), 1)
    R[(int(rnd), c)][path] = dict(rate=float(rate), p50=float(p50), p99=float(p99),
                                  cpu=srv, ccpu=float(ccpu), all=srv + float(ccpu))
def series(c, path, key):
    return [R[k][path][key] for k in sorted(R) if k[1] == c and path in R[k]]
def paired(c, a, b, key):
    return [R[k][a][key] / R[k][b][key] for k in sorted(R) if k[1] == c and a in R[k] and b in R[k]]
def q(xs):
    xs = sorted(xs); n = len(xs)
    return statistics.median(xs), xs[n // 4], xs[(3 * n) // 4]
med = statistics.median
b = {"memstore": "memstore", "redis": "redis plugin → redis"}.get(sys.argv[4], sys.argv[4])
names = {"direct": (f"loadgen → {b}", "off"),
         "off": (f"loadgen → proxy → {b}", "off (OTEL_SDK_DISABLED)"),
         "ratio": (f"loadgen → proxy → {b}", "parentbased_traceidratio 0.01, file"),
         "adaptive": (f"loadgen → proxy → {b}", "adaptive (ratio 0.01, slow 100 ms), file"),
         "on": (f"loadgen → proxy → {b}", "always_on, file"),
         "recorded": (f"loadgen → proxy → {b}", "always_on, no exporter"),
         "direct_tp": (f"loadgen → {b}, + traceparent header", "off")}
n = len(series(conc, "off", "rate"))
print(f"Medians over {n} rounds ({conc} in flight unless marked):\n")
print("| path | tracing | calls/s | p50 (µs) | p99 (µs) | server CPU µs/call | loadgen CPU µs/call | p50 at 1 in flight (µs) |")
print("|---|---|---:|---:|---:|---:|---:|---:|")
for p in [p for p in names if series(conc, p, "rate")]:
    print(f"| {names[p][0]} | {names[p][1]} | {med(series(conc, p, 'rate')):.0f} | "
          f"{med(series(conc, p, 'p50')):.1f} | {med(series(conc, p, 'p99')):.1f} | "
          f"{med(series(conc, p, 'cpu')):.1f} | {med(series(conc, p, 'ccpu')):.1f} | "
          f"{med(series('1', p, 'p50')):.1f} |")
print("\nPaired per round, median [interquartile range]:\n")
print("| comparison | median | IQR |")
print("|---|---:|---:|")
pct = lambda x: f"{100 * (x - 1):+.1f}%"
split = bool(series(conc, "recorded", "rate"))
floor = bool(series(conc, "direct_tp", "rate"))
# The header's CPU (both ends of the hop), as a share of everything the
# proxy path "off" costs per call on these cores (servers + load generator).
def header_share(c):
    return [1 + (R[k]["direct_tp"]["all"] - R[k]["direct"]["all"]) / R[k]["off"]["all"]
            for k in sorted(R) if k[1] == c and all(p in R[k] for p in ("direct_tp", "direct", "off"))]
for label, xs, f in (
    ("calls/s, traceidratio 0.01 vs off", paired(conc, "ratio", "off", "rate"), pct),
    ("calls/s, adaptive vs off", paired(conc, "adaptive", "off", "rate"), pct),
    ("p99, adaptive vs off", paired(conc, "adaptive", "off", "p99"), pct),
    ("calls/s, always_on vs off", paired(conc, "on", "off", "rate"), pct),
    *((("calls/s, always_on without export vs off", paired(conc, "recorded", "off", "rate"), pct),)
      if split else ()),
    ("server CPU/call, traceidratio 0.01 vs off", paired(conc, "ratio", "off", "cpu"), pct),
    ("server CPU/call, adaptive vs off", paired(conc, "adaptive", "off", "cpu"), pct),
    ("server CPU/call, always_on vs off", paired(conc, "on", "off", "cpu"), pct),
    *((("server CPU/call, always_on without export vs off", paired(conc, "recorded", "off", "cpu"), pct),)
      if split else ()),
    *((("calls/s, direct + traceparent header vs direct", paired(conc, "direct_tp", "direct", "rate"), pct),
       ("CPU/call (servers + loadgen), direct + traceparent header vs direct",
        paired(conc, "direct_tp", "direct", "all"), pct),
       ("the header's CPU as a share of the proxy path's (off) CPU/call", header_share(conc), pct),
       ("CPU/call (servers + loadgen), traceidratio 0.01 vs off", paired(conc, "ratio", "off", "all"), pct))
      if floor else ()),
    (f"p50 proxy (off) / p50 direct, {conc} in flight", paired(conc, "off", "direct", "p50"),
     lambda x: f"{x:.2f}×"),
    ("p50 proxy (off) / p50 direct, 1 in flight", paired("1", "off", "direct", "p50"),
     lambda x: f"{x:.2f}×"),
):
    m, lo, hi = q(xs)
    print(f"| {label} | **{f(m)}** | {f(lo)} … {f(hi)} |")
print("\nServer CPU = CPU time of the server processes (proxy + its plugin, or memstore alone) per call;"
      " loadgen CPU = the load generator's own (warm-up included).")
PY
if [ "$BACKEND" = redis ]; then
  # CLIENT SETNAME is per connection: its count stays at the connections
  # made, whatever the number of calls.
  STATS=$(redis-cli -p "$RPORT" info commandstats | tr -d '\r')
  calls() { echo "$STATS" | sed -n "s/^cmdstat_$1:calls=\([0-9]*\),.*/\1/p"; }
  printf '\nRedis INFO commandstats over the whole run: %s %s calls, %s client|setname calls (%s connections).\n' \
    "$(calls "$OP")" "$(echo "$OP" | tr a-z A-Z)" "$(calls 'client|setname')" \
    "$(redis-cli -p "$RPORT" info stats | tr -d '\r' | sed -n 's/^total_connections_received://p')" >>"$TABLE"
fi
echo
cat "$TABLE"
# Adaptive sampling's counters, proxy and plugin (SIGUSR1 logs them): the
# peak memory held for undecided traces under this load.
kill -USR1 "${PID[adaptive]}" 2>/dev/null || true
pkill -USR1 -P "${PID[adaptive]}" 2>/dev/null || true
sleep 0.5
echo
echo "adaptive sampling counters (proxy, then plugin):"
grep -h 'adaptive sampling:' "$WORK/adaptive/proxy.log" | sed 's/^/  /' | tail -2
if [ "$RECORD" = 1 ]; then
  DOC="$ROOT/docs/benchmarks.md"
  [ -f "$DOC" ] || echo "# Benchmarks" >"$DOC"
  grep -q '^## Proxy' "$DOC" || printf '\n## Proxy\n' >>"$DOC"
  {
    echo
    echo "### $(date -u '+%Y-%m-%d %H:%M') UTC — $(nproc) CPUs, $ROUNDS rounds × ${DURATION}s per run — $OP on $BACKEND"
    echo
    cat "$TABLE"
  } >>"$DOC"
  echo "bench-proxy: appended to $DOC"
fi
rm -f "$TABLE"
