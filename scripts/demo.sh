#!/usr/bin/env bash
# The demo behind `make demo`: the proxy on its embedded default (namespace
# `default` on prism-plugin-sqlite) in a temporary data directory, a few kv
# calls (one failing), their traces drawn by `prism trace show`, then a clean
# stop. Usage: scripts/demo.sh [BUILD_DIR]   (default: build)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${1:-build}
case "$BUILD" in /*) ;; *) BUILD="$ROOT/$BUILD" ;; esac
PROXY="$BUILD/bin/prism-proxy"
PRISM="$BUILD/bin/prism"
for bin in "$PROXY" "$PRISM" "$BUILD/bin/prism-plugin-sqlite"; do
  if [ ! -x "$bin" ]; then
    echo "demo: $bin is missing; build first (make build)" >&2
    exit 1
  fi
done

DEMO_DIR=$(mktemp -d "${TMPDIR:-/tmp}/prism-demo-XXXXXX")
export PRISM_DATA_DIR="$DEMO_DIR"
export PRISM_TRACE_FILE="$DEMO_DIR/traces.jsonl"
export OTEL_BSP_SCHEDULE_DELAY=200   # spans reach the file within 0.2 s
PROXY_PID=""
cleanup() {
  if [ -n "$PROXY_PID" ] && kill -0 "$PROXY_PID" 2>/dev/null; then
    kill -TERM "$PROXY_PID" 2>/dev/null || true
    wait "$PROXY_PID" 2>/dev/null || true
  fi
  rm -rf "$DEMO_DIR"
}
trap cleanup EXIT

bold() { if [ -t 1 ]; then printf '\n\033[1m%s\033[0m\n' "$*"; else printf '\n%s\n' "$*"; fi; }

bold "# 1. prism-proxy with no configuration (embedded default), data in $DEMO_DIR"
# Port 0: a free port, printed in the banner.
"$PROXY" --listen 127.0.0.1:0 >"$DEMO_DIR/proxy.out" 2>"$DEMO_DIR/proxy.log" &
PROXY_PID=$!
for _ in $(seq 1 200); do
  grep -q "traces ->" "$DEMO_DIR/proxy.out" 2>/dev/null && break
  if ! kill -0 "$PROXY_PID" 2>/dev/null; then
    echo "demo: prism-proxy exited:" >&2
    cat "$DEMO_DIR/proxy.log" >&2
    exit 1
  fi
  sleep 0.05
done
cat "$DEMO_DIR/proxy.out"
ADDR=$(sed -n 's/^prism-proxy listening on \([^ ]*\).*/\1/p' "$DEMO_DIR/proxy.out")
[ -n "$ADDR" ] || { echo "demo: the proxy did not report its address" >&2; exit 1; }
export PRISM_ADDR="$ADDR"

# Runs a prism command, shows it and its output; remembers the trace id.
LAST_TRACE=""
run() {
  printf '$ prism %s\n' "$*"
  local out rc=0
  out=$("$PRISM" "$@" 2>&1) || rc=$?
  printf '%s\n' "$out" | sed 's/^/  /'
  [ $rc -eq 0 ] || printf '  (exit code %d)\n' "$rc"
  LAST_TRACE=$(printf '%s\n' "$out" | sed -n 's/^trace \([0-9a-f]\{32\}\).*/\1/p' | tail -1)
}

bold "# 2. key-value calls through the proxy (each prints its trace id)"
run kv set greeting "hello, prism"
run kv get greeting
GET_TRACE=$LAST_TRACE
run kv exists greeting
run kv del greeting
bold "# 3. a failing call: a namespace that does not exist"
run kv get greeting --namespace orders
FAIL_TRACE=$LAST_TRACE

sleep 0.5  # let the batch processors of proxy and plugin write their spans
bold "# 4. recent traces (prism trace ls)"
"$PRISM" trace ls
if [ -n "$GET_TRACE" ]; then
  bold "# 5. the Get, client -> proxy -> plugin -> SQLite (prism trace show ${GET_TRACE:0:8})"
  "$PRISM" trace show "${GET_TRACE:0:8}"
fi
if [ -n "$FAIL_TRACE" ]; then
  bold "# 6. the failing call (prism trace show ${FAIL_TRACE:0:8})"
  "$PRISM" trace show "${FAIL_TRACE:0:8}"
fi

bold "# 7. stop: SIGTERM drains calls, stops the plugin, flushes spans"
kill -TERM "$PROXY_PID"
rc=0
wait "$PROXY_PID" || rc=$?
PROXY_PID=""
echo "prism-proxy exited with status $rc"
[ $rc -eq 0 ]
