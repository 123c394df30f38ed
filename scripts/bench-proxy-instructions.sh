#!/usr/bin/env bash
# Instructions per call, proxy and plugin, under callgrind: a measure the
# machine's noise does not move much (wall-clock figures on a shared VM drift
# by tens of percent; user-space instruction counts by a few).
#   loadgen -> prism-proxy -> prism-plugin-memstore, Get, CONCURRENCY calls in
#   flight, modes off (OTEL_SDK_DISABLED) / never (parentbased_always_off: the
#   context is propagated, nothing recorded) / ratio (parentbased_traceidratio
#   0.01) / adaptive (prism_adaptive: every call recorded, decided at its
#   end, 1 % exported) / on (always_on), trace file exporter.
# Per mode: a warm-up, then DURATION s idle and DURATION s of load, counters
# zeroed before each; per call = (load - idle) / calls, so timers and other
# time-driven work (slowed ~50x under callgrind) do not count as per-call
# cost. The plugin's health checks are moved out of the window (60 s).
# FLOOR=1 adds the floor under "never": loadgen -> memstore directly (no
# proxy, OTEL_SDK_DISABLED), with and without a fixed traceparent header on
# every call, both ends under callgrind and counted over the same window -
# what gRPC charges (client + server) for the one header a traced proxy adds
# to its hop, before any tracing code runs.
# Usage: scripts/bench-proxy-instructions.sh [BUILD_DIR]
#   env: REPEAT (3), DURATION (4), CONCURRENCY (1), FLOOR (0),
#        MODES ("off never ratio adaptive on"; the table needs all five)
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
MODES=${MODES:-off never ratio adaptive on}
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
  wait_serving "127.0.0.1:$port" 30
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

# direct [traceparent] -> prints "loadgen_ir memstore_ir" per call. The
# loadgen runs under callgrind too; both are zeroed and dumped together and
# the calls in the window are counted by callgrind itself (Slot::Issue).
run_direct() {
  local port d srv lg n m=()
  [ "${1:-}" = traceparent ] && m=(-m "traceparent=00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00")
  port=$(free_port)
  d=$(mktemp -d "$WORK/direct-XXXX")
  env OTEL_SDK_DISABLED=true valgrind --tool=callgrind -q --callgrind-out-file="$d/srv.%p" \
    "$BIN/prism-plugin-memstore" --listen "127.0.0.1:$port" >"$d/srv.out" 2>&1 &
  srv=$!
  wait_serving "127.0.0.1:$port" 30
  valgrind --tool=callgrind -q --callgrind-out-file="$d/lg.%p" "$BIN/prism-loadgen" \
    -a "127.0.0.1:$port" -c "$CONCURRENCY" -d $((DURATION + 5)) -w 0 --json "${m[@]}" >"$d/lg.json" &
  lg=$!
  sleep 3  # past start-up and the key's Set
  local pids=("$(basename "$(ls "$d"/srv.*[0-9])" | cut -d. -f2)" "$lg")
  for p in "${pids[@]}"; do callgrind_control -z "$p" >/dev/null 2>&1 || true; done
  sleep "$DURATION"
  for p in "${pids[@]}"; do callgrind_control -d "$p" >/dev/null 2>&1 || true; done
  wait "$lg" || true
  kill -TERM "$srv"; wait "$srv" 2>/dev/null || true
  callgrind_annotate --inclusive=yes "$d/lg.$lg.1" >"$d/lg.txt" 2>/dev/null
  n=$(grep -m1 '=> .*Slot::Issue() (' "$d/lg.txt" | grep -o '([0-9,]*x)' | tr -d '(x,)' || true)
  [ -n "$n" ] && [ "$n" -gt 0 ] || { echo "bench-proxy-instructions: no calls counted in $d" >&2; exit 1; }
  echo "$(( $(grep -m1 '^summary:' "$d/lg.$lg.1" | awk '{print $2}') / n )) \
$(( $(grep -m1 '^summary:' "$d"/srv.*.1 | awk '{print $2}') / n ))"
}

declare -A PX PL
for r in $(seq 1 "$REPEAT"); do
  for mode in $MODES; do
    read -r p q < <(run_mode "$mode")
    PX[$mode]="${PX[$mode]:-} $p"; PL[$mode]="${PL[$mode]:-} $q"
    printf '  round %d %-5s proxy %7d  plugin %7d instructions/call\n' "$r" "$mode" "$p" "$q"
  done
done
declare -A LG SV  # declared even without FLOOR: `set -u` and ${LG[plain]:-}
if [ "${FLOOR:-0}" = 1 ]; then
  for r in $(seq 1 "$REPEAT"); do
    for how in plain traceparent; do
      read -r p q < <(run_direct "$how")
      LG[$how]="${LG[$how]:-} $p"; SV[$how]="${SV[$how]:-} $q"
      printf '  round %d direct %-11s loadgen %7d  memstore %7d instructions/call\n' "$r" "$how" "$p" "$q"
    done
  done
fi
# A MODES subset: the modes not run are empty and left out of the table.
python3 - "${PX[off]:-}" "${PL[off]:-}" "${PX[ratio]:-}" "${PL[ratio]:-}" "${PX[on]:-}" "${PL[on]:-}" \
  "${PX[never]:-}" "${PL[never]:-}" "${PX[adaptive]:-}" "${PL[adaptive]:-}" "${LG[plain]:-}" \
  "${SV[plain]:-}" "${LG[traceparent]:-}" "${SV[traceparent]:-}" <<'PY'
import statistics, sys
v = [[float(x) for x in a.split()] for a in sys.argv[1:11]]
m = [statistics.median(x) if x else None for x in v]
if m[0] is None:
    sys.exit("no 'off' mode in MODES: nothing to compare with")
off = m[0] + m[1]
print("\n| tracing | proxy instr/call | plugin instr/call | both | vs off |")
print("|---|---:|---:|---:|---:|")
for name, i in (("off", 0), ("parentbased_always_off (propagation only)", 6),
                ("parentbased_traceidratio 0.01", 2), ("adaptive (prism_adaptive)", 8),
                ("always_on", 4)):
    if m[i] is None:
        continue
    both = m[i] + m[i + 1]
    print(f"| {name} | {m[i]:,.0f} | {m[i+1]:,.0f} | {both:,.0f} | {100*(both/off-1):+.1f}% |")
print("\nMedians of", len(v[0]), "runs each; user-space instructions only (callgrind), idle subtracted.")
if sys.argv[11].strip():
    f = [statistics.median(float(x) for x in a.split()) for a in sys.argv[11:15]]
    client, server = f[2] - f[0], f[3] - f[1]
    print("\nFloor: one traceparent header on one hop, no tracing code but the plugin's parse\n")
    print("| direct, loadgen → memstore | loadgen instr/call | memstore instr/call |")
    print("|---|---:|---:|")
    print(f"| no header | {f[0]:,.0f} | {f[1]:,.0f} |")
    print(f"| + traceparent | {f[2]:,.0f} | {f[3]:,.0f} |")
    print(f"\nThe header: {client:+,.0f} (sending) {server:+,.0f} (receiving) = {client + server:+,.0f}"
          f" instructions per call = {100 * (client + server) / off:+.1f}% of the proxy path"
          f" with tracing off ({off:,.0f}).")
PY
