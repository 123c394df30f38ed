#!/usr/bin/env bash
# Instructions per call, proxy and plugin, under callgrind: a measure the
# machine's noise does not move much (wall-clock figures on a shared VM drift
# by tens of percent; user-space instruction counts by a few).
#   loadgen -> prism-proxy -> prism-plugin-memstore, Get, CONCURRENCY calls in
#   flight, modes off (OTEL_SDK_DISABLED) / never (parentbased_always_off: the
#   context is propagated, nothing recorded) / ratio (parentbased_traceidratio
#   0.01) / on (always_on), trace file exporter.
# Per mode: a warm-up, then DURATION s idle and DURATION s of load, counters
# zeroed before each; per call = (load - idle) / calls, so timers and other
# time-driven work (slowed ~50x under callgrind) do not count as per-call
# cost. The plugin's health checks are moved out of the window (60 s).
# Usage: scripts/bench-proxy-instructions.sh [BUILD_DIR]
#   env: REPEAT (3), DURATION (4), CONCURRENCY (1)
# Needs valgrind (apt-get install valgrind). Kernel time is not counted.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${1:-build}
case "$BUILD" in /*) ;; *) BUILD="$ROOT/$BUILD" ;; esac
BIN="$BUILD/bin"
command -v valgrind >/dev/null || { echo "bench-proxy-instructions: needs valgrind (apt-get install valgrind)" >&2; exit 1; }
REPEAT=${REPEAT:-3}
DURATION=${DURATION:-4}
CONCURRENCY=${CONCURRENCY:-1}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/prism-cg-XXXXXX")
trap 'rm -rf "$WORK"' EXIT
# shellcheck source=scripts/bench-common.sh
source "$ROOT/scripts/bench-common.sh"

run_mode() {  # mode -> prints "proxy_ir plugin_ir" per call
  local mode=$1 port d pid f calls
  port=$(free_port)
  d=$(mktemp -d "$WORK/run-XXXX")
  proxy_setup "$d" "$port" "$mode" "supervision: {health_interval: 60s}"
  "${PROXY_ENV[@]}" valgrind --tool=callgrind --trace-children=yes -q \
    --callgrind-out-file="$d/cg.%p" "$BIN/prism-proxy" --config "$d/prism.yaml" >"$d/out" 2>"$d/log" &
  pid=$!
  for _ in $(seq 1 300); do
    "$BIN/prism-loadgen" -a "127.0.0.1:$port" -d 0.05 -w 0 -c 1 --json >/dev/null 2>&1 && break
    sleep 0.1
  done
  "$BIN/prism-loadgen" -a "127.0.0.1:$port" -c "$CONCURRENCY" -d 2 -w 0 --json >/dev/null
  cg_all() { for f in "$d"/cg.*; do callgrind_control "$1" "${f##*.}" >/dev/null 2>&1 || true; done; }
  cg_all -z; sleep "$DURATION"; cg_all -d  # dump 1: idle
  cg_all -z
  J=$("$BIN/prism-loadgen" -a "127.0.0.1:$port" -c "$CONCURRENCY" -d "$DURATION" -w 0 --json)
  cg_all -d  # dump 2: load
  sleep 0.5
  kill -TERM "$pid"; wait "$pid" 2>/dev/null || true
  calls=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["calls"])' "$J")
  local proxy=0 plugin=0 cmd ir idle
  for f in "$d"/cg.*.2; do
    cmd=$(grep -m1 '^cmd:' "$f" | awk '{print $2}')
    ir=$(grep -m1 '^summary:' "$f" | awk '{print $2}')
    idle=$(grep -m1 '^summary:' "${f%.2}.1" | awk '{print $2}')
    case $(basename "$cmd") in
      prism-proxy) proxy=$(((ir - idle) / calls)) ;;
      prism-plugin-memstore) plugin=$(((ir - idle) / calls)) ;;
    esac
  done
  echo "$proxy $plugin"
}

declare -A PX PL
for r in $(seq 1 "$REPEAT"); do
  for mode in off never ratio on; do
    read -r p q < <(run_mode "$mode")
    PX[$mode]="${PX[$mode]:-} $p"; PL[$mode]="${PL[$mode]:-} $q"
    printf '  round %d %-5s proxy %7d  plugin %7d instructions/call\n' "$r" "$mode" "$p" "$q"
  done
done
python3 - "${PX[off]}" "${PL[off]}" "${PX[ratio]}" "${PL[ratio]}" "${PX[on]}" "${PL[on]}" \
  "${PX[never]}" "${PL[never]}" <<'PY'
import statistics, sys
v = [[float(x) for x in a.split()] for a in sys.argv[1:9]]
m = [statistics.median(x) for x in v]
off = m[0] + m[1]
print("\n| tracing | proxy instr/call | plugin instr/call | both | vs off |")
print("|---|---:|---:|---:|---:|")
for name, i in (("off", 0), ("parentbased_always_off (propagation only)", 6),
                ("parentbased_traceidratio 0.01", 2), ("always_on", 4)):
    both = m[i] + m[i + 1]
    print(f"| {name} | {m[i]:,.0f} | {m[i+1]:,.0f} | {both:,.0f} | {100*(both/off-1):+.1f}% |")
print("\nMedians of", len(v[0]), "runs each; user-space instructions only (callgrind), idle subtracted.")
PY
