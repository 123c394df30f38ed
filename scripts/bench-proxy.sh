#!/usr/bin/env bash
# Side-by-side Get benchmark with prism-loadgen, in one run:
#   direct   loadgen -> prism-plugin-memstore (TCP loopback), tracing off
#   off      loadgen -> prism-proxy -> memstore, tracing off (OTEL_SDK_DISABLED)
#   ratio    the same, parentbased_traceidratio 0.01, trace file exporter
#   on       the same, always_on, trace file exporter
# Usage: scripts/bench-proxy.sh [BUILD_DIR] [--record]
#   env: DURATION (s, default 5), CONCURRENCY (default 32), ROUNDS (default 2)
# --record appends the table to docs/benchmarks.md under "## Proxy".
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${1:-build}
case "$BUILD" in /*) ;; *) BUILD="$ROOT/$BUILD" ;; esac
RECORD=0
[ "${2:-}" = "--record" ] && RECORD=1
BIN="$BUILD/bin"
for b in prism-proxy prism-plugin-memstore prism-loadgen; do
  [ -x "$BIN/$b" ] || { echo "bench-proxy: $BIN/$b missing; build first" >&2; exit 1; }
done
DURATION=${DURATION:-5}
CONCURRENCY=${CONCURRENCY:-32}
ROUNDS=${ROUNDS:-2}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/prism-bench-XXXXXX")
PIDS=()
cleanup() {
  for p in "${PIDS[@]+"${PIDS[@]}"}"; do kill -TERM "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

wait_serving() {  # address
  for _ in $(seq 1 200); do
    if "$BIN/prism-loadgen" -a "$1" -d 0.05 -w 0 -c 1 --json >/dev/null 2>&1; then return 0; fi
    sleep 0.05
  done
  echo "bench-proxy: $1 is not serving" >&2
  return 1
}

# start_proxy MODE -> sets PROXY_ADDR, PROXY_PID
start_proxy() {
  local mode=$1 port
  port=$(free_port)
  cat >"$WORK/prism.yaml" <<YAML
listen: 127.0.0.1:$port
data_dir: $WORK/data
namespaces:
  default:
    plugin:
      command: [prism-plugin-memstore]
YAML
  local -a envs=(env -u OTEL_TRACES_SAMPLER -u OTEL_TRACES_SAMPLER_ARG -u OTEL_SDK_DISABLED
                 -u OTEL_TRACES_EXPORTER "PRISM_TRACE_FILE=$WORK/traces-$mode.jsonl")
  case $mode in
    off) envs+=(OTEL_SDK_DISABLED=true) ;;
    ratio) envs+=(OTEL_TRACES_SAMPLER=parentbased_traceidratio OTEL_TRACES_SAMPLER_ARG=0.01) ;;
    on) envs+=(OTEL_TRACES_SAMPLER=always_on) ;;
  esac
  "${envs[@]}" "$BIN/prism-proxy" --config "$WORK/prism.yaml" >"$WORK/proxy-$mode.out" 2>"$WORK/proxy-$mode.log" &
  PROXY_PID=$!
  PIDS+=("$PROXY_PID")
  PROXY_ADDR="127.0.0.1:$port"
  wait_serving "$PROXY_ADDR"
}

stop_pid() { kill -TERM "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }

run_load() {  # label address
  "$BIN/prism-loadgen" -a "$2" -c "$CONCURRENCY" -d "$DURATION" -w 1 --json
}
# Unloaded latency: one call in flight.
run_single() {  # address
  "$BIN/prism-loadgen" -a "$1" -c 1 -d 2 -w 0.5 --no-set --json
}
# CPU seconds (user+system) used so far by a process and its children.
cpu_of() {
  local total=0 p
  for p in "$1" $(pgrep -P "$1" 2>/dev/null); do
    if [ -r "/proc/$p/stat" ]; then
      total=$((total + $(awk '{print $14 + $15}' "/proc/$p/stat")))
    fi
  done
  echo "$total"
}

declare -A RATE P50 P99 LAT1 CPU
TICKS=$(getconf CLK_TCK)
record_single() {  # label json
  LAT1[$1]="${LAT1[$1]:-} $(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["p50_us"])' "$2")"
}
record_cpu() {  # label ticks json  (CPU µs of the server side per call)
  local us
  us=$(python3 -c 'import json,sys; j=json.loads(sys.argv[2]); print(int(sys.argv[1])*1e6/int(sys.argv[3])/(j["calls_per_sec"]*(j["duration_s"]+1)))' "$2" "$3" "$TICKS")
  CPU[$1]="${CPU[$1]:-} $us"
}
record() {  # label json
  local rate p50 p99
  rate=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["calls_per_sec"])' "$2")
  p50=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["p50_us"])' "$2")
  p99=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["p99_us"])' "$2")
  RATE[$1]="${RATE[$1]:-} $rate"
  P50[$1]="${P50[$1]:-} $p50"
  P99[$1]="${P99[$1]:-} $p99"
  printf '  %-7s %10.0f calls/s  p50 %8.1f us  p99 %8.1f us\n' "$1" "$rate" "$p50" "$p99"
}

echo "bench-proxy: Get, $CONCURRENCY in flight, ${DURATION}s per run, $ROUNDS rounds, $(nproc) CPUs"
MODES=(off ratio on)
for round in $(seq 1 "$ROUNDS"); do
  echo "round $round"
  port=$(free_port)
  env OTEL_SDK_DISABLED=true "$BIN/prism-plugin-memstore" --listen "127.0.0.1:$port" \
    >"$WORK/memstore.out" 2>"$WORK/memstore.log" &
  MEM_PID=$!
  PIDS+=("$MEM_PID")
  wait_serving "127.0.0.1:$port"
  c0=$(cpu_of "$MEM_PID")
  J=$(run_load direct "127.0.0.1:$port")
  record_cpu direct $(( $(cpu_of "$MEM_PID") - c0 )) "$J"
  record direct "$J"
  record_single direct "$(run_single "127.0.0.1:$port")"
  stop_pid "$MEM_PID"
  # The proxy modes run in a rotated order so that none always runs first
  # (the machine's speed drifts within a round too).
  for i in 0 1 2; do
    mode=${MODES[$(( (i + round - 1) % 3 ))]}
    start_proxy "$mode"
    c0=$(cpu_of "$PROXY_PID")
    J=$(run_load "$mode" "$PROXY_ADDR")
    record_cpu "$mode" $(( $(cpu_of "$PROXY_PID") - c0 )) "$J"
    record "$mode" "$J"
    record_single "$mode" "$(run_single "$PROXY_ADDR")"
    stop_pid "$PROXY_PID"
  done
done

# Median of the rounds (the mean of the middle two for an even count).
median() { python3 -c 'import statistics,sys; print(statistics.median(float(x) for x in sys.argv[1:]))' $1; }
TABLE=$(mktemp)
{
  echo "| path | tracing | calls/s | p50 (µs) | p99 (µs) | calls/s vs off | server CPU µs/call | p50 at 1 in flight (µs) |"
  echo "|---|---|---:|---:|---:|---:|---:|---:|"
  off_rate=$(median "${RATE[off]}")
  for mode in direct off ratio on; do
    r=$(median "${RATE[$mode]}"); p5=$(median "${P50[$mode]}"); p9=$(median "${P99[$mode]}")
    case $mode in
      direct) path="loadgen → memstore"; tr="off" ;;
      off) path="loadgen → proxy → memstore"; tr="off (OTEL_SDK_DISABLED)" ;;
      ratio) path="loadgen → proxy → memstore"; tr="parentbased_traceidratio 0.01, file" ;;
      on) path="loadgen → proxy → memstore"; tr="always_on, file" ;;
    esac
    rel=$(python3 -c "print(f'{100*($r/$off_rate-1):+.1f}%')")
    cpu=$(median "${CPU[$mode]}"); l1=$(median "${LAT1[$mode]}")
    printf '| %s | %s | %.0f | %.1f | %.1f | %s | %.1f | %.1f |\n' "$path" "$tr" "$r" "$p5" "$p9" "$rel" "$cpu" "$l1"
  done
  d50=$(median "${P50[direct]}"); o50=$(median "${P50[off]}")
  d1=$(median "${LAT1[direct]}"); o1=$(median "${LAT1[off]}")
  python3 -c "print(f'\nproxy p50 / direct p50, tracing off: {$o50/$d50:.2f}x at $CONCURRENCY in flight, {$o1/$d1:.2f}x at 1 in flight (medians of the rounds)')"
  # Paired figures: each round's ratio against the same round's run, then
  # the median over rounds - robust against the machine's drift.
  python3 - "${RATE[off]}" "${RATE[ratio]}" "${RATE[on]}" "${P50[direct]}" "${P50[off]}" <<'PY'
import statistics, sys
off, ratio, on, p50d, p50o = ([float(x) for x in a.split()] for a in sys.argv[1:6])
def show(label, xs, fmt):
    print(f"- {label}: median {fmt(statistics.median(xs))} (rounds: {', '.join(fmt(x) for x in xs)})")
pct = lambda x: f"{100 * (x - 1):+.1f}%"
print("\nPaired per round (median, then every round):")
show("calls/s, parentbased_traceidratio 0.01 vs off", [r / o for r, o in zip(ratio, off)], pct)
show("calls/s, always_on vs off", [r / o for r, o in zip(on, off)], pct)
show("p50 proxy (off) / p50 direct", [o / d for o, d in zip(p50o, p50d)], lambda x: f"{x:.2f}x")
PY
  echo "Server CPU = CPU time of the server processes (proxy + its plugin, or memstore alone) per call."
} >"$TABLE"
echo
cat "$TABLE"
if [ "$RECORD" = 1 ]; then
  DOC="$ROOT/docs/benchmarks.md"
  [ -f "$DOC" ] || echo "# Benchmarks" >"$DOC"
  grep -q '^## Proxy' "$DOC" || printf '\n## Proxy\n\nscripts/bench-proxy.sh (prism-loadgen, closed loop, Get of a 64-byte value).\n' >>"$DOC"
  {
    echo
    echo "### $(date -u +%Y-%m-%d) — $(nproc) CPUs, concurrency $CONCURRENCY, ${DURATION}s × $ROUNDS rounds (median)"
    echo
    cat "$TABLE"
  } >>"$DOC"
  echo "bench-proxy: appended to $DOC"
fi
rm -f "$TABLE"
