#!/usr/bin/env bash
# prism-loadgen -m: a header given on the command line reaches the server on
# every call (a memstore plugin that samples only traced parents records the
# trace id we send), and a header gRPC would refuse is an error, exit 2.
# --op set makes the calls Sets.
# Usage: metadata_test.sh BIN_DIR
set -euo pipefail
BIN=$1
WORK=$(mktemp -d "${TMPDIR:-/tmp}/prism-loadgen-test-XXXXXX")
PID=
cleanup() {
  if [ -n "$PID" ]; then kill -TERM "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

# Bad input: exit 2 and a message naming the problem.
expect_usage_error() {  # argument, expected message fragment
  local out rc=0
  out=$("$BIN/prism-loadgen" -a 127.0.0.1:1 -d 0.1 -m "$1" 2>&1) || rc=$?
  [ "$rc" = 2 ] || fail "-m '$1': exit $rc, want 2 ($out)"
  grep -qF -- "$2" <<<"$out" || fail "-m '$1': message '$out' lacks '$2'"
}
expect_usage_error 'Traceparent=x' "only lower-case letters"
expect_usage_error 'grpc-timeout=1S' "reserved by gRPC"
expect_usage_error 'novalue' "expected KEY=VALUE"
expect_usage_error $'x-k=a\tb' "printable ASCII only"

# The header travels: parentbased_always_off records a call only when the
# caller's traceparent says sampled, so every span in the file is ours.
TRACE_ID=4bf92f3577b34da6a3ce929d0e0e4736
SOCK="$WORK/memstore.sock"
env -u OTEL_SDK_DISABLED -u OTEL_TRACES_EXPORTER OTEL_TRACES_SAMPLER=parentbased_always_off \
  PRISM_TRACE_FILE="$WORK/traces.jsonl" "$BIN/prism-plugin-memstore" --listen "unix://$SOCK" \
  >"$WORK/plugin.log" 2>&1 &
PID=$!
for _ in $(seq 1 100); do [ -S "$SOCK" ] && break; sleep 0.05; done
[ -S "$SOCK" ] || fail "memstore did not start: $(cat "$WORK/plugin.log")"

J=$("$BIN/prism-loadgen" -a "unix://$SOCK" -n loadgen-test -c 2 -d 0.3 -w 0 --json \
      -m "traceparent=00-$TRACE_ID-00f067aa0ba902b7-01" -m "x-extra=1")
python3 - "$J" <<'PY' || fail "loadgen output: $J"
import json, sys
j = json.loads(sys.argv[1])
assert j["errors"] == 0 and j["calls"] > 0, j
assert j["client_cpu_us_per_call"] > 0, j
PY
# --op set: every call is a Set (none is made otherwise with --no-set).
J=$("$BIN/prism-loadgen" -a "unix://$SOCK" -n loadgen-test -c 2 -d 0.3 -w 0 --json --no-set \
      --op set -m "traceparent=00-$TRACE_ID-00f067aa0ba902b7-01")
python3 - "$J" <<'PY' || fail "loadgen --op set output: $J"
import json, sys
j = json.loads(sys.argv[1])
assert j["errors"] == 0 and j["calls"] > 0 and j["op"] == "set", j
PY
kill -TERM "$PID"; wait "$PID" || fail "memstore did not exit 0 on SIGTERM"
PID=
[ -s "$WORK/traces.jsonl" ] || fail "no spans recorded: the traceparent did not arrive"
python3 - "$WORK/traces.jsonl" "$TRACE_ID" <<'PY' || fail "spans not in the sent trace"
import json, sys
ids = {s["traceId"] for line in open(sys.argv[1]) for rs in json.loads(line)["resourceSpans"]
       for ss in rs["scopeSpans"] for s in ss["spans"]}
assert ids == {sys.argv[2]}, ids
names = [s["name"] for line in open(sys.argv[1]) for rs in json.loads(line)["resourceSpans"]
         for ss in rs["scopeSpans"] for s in ss["spans"]]
assert names.count("prism.v1.KeyValue/Set") > 1, "no Set calls from --op set"
PY
echo "PASS"
