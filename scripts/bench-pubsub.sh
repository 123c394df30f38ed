#!/usr/bin/env bash
# Side-by-side publish/subscribe benchmark, in one run (docs/benchmarks.md,
# "Publish/subscribe"): one nats-server on a free loopback port, and two
# proxies each launching its own prism-plugin-nats on it:
#   off   tracing off (OTEL_SDK_DISABLED) in proxy and plugin
#   on    always_on, trace file exporter: per message the proxy's SERVER and
#         CLIENT spans, the plugin's SERVER and PRODUCER spans, the plugin's
#         CONSUMER span and the proxy's delivery span
# prism-pubsub-bench publishes for DURATION seconds with CONCURRENCY
# closed-loop publishers to one subscriber through the same proxy. Rounds
# alternate the order of the two paths; medians of the rounds are printed.
# Usage: scripts/bench-pubsub.sh [BUILD_DIR] [--record]
#   env: ROUNDS (default 7), DURATION (s per run, default 2),
#        CONCURRENCY (default 4), SIZE (data bytes, default 64),
#        KEEP (set: keep the run's directory: logs, per-run JSON lines)
# --record appends the table to docs/benchmarks.md.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=scripts/bench-common.sh
source "$ROOT/scripts/bench-common.sh"
bench_args "$@"
bench_need prism-proxy prism-plugin-nats prism-pubsub-bench
command -v nats-server >/dev/null || { echo "bench-pubsub: nats-server missing (scripts/bootstrap.sh)" >&2; exit 1; }
ROUNDS=${ROUNDS:-7}
DURATION=${DURATION:-2}
CONCURRENCY=${CONCURRENCY:-4}
SIZE=${SIZE:-64}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/prism-bench-pubsub-XXXXXX")
PIDS=()
cleanup() {
  stop_pids
  if [ -n "${KEEP:-}" ]; then echo "kept $WORK" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

NPORT=$(free_port)
nats-server -a 127.0.0.1 -p "$NPORT" -l "$WORK/nats.log" &
PIDS+=("$!")
PROXY_PLUGIN="[prism-plugin-nats, --url, \"nats://127.0.0.1:$NPORT\"]"
export PROXY_PLUGIN

declare -A ADDR
for mode in off on; do
  port=$(free_port)
  proxy_setup "$WORK/$mode" "$port" "$mode"
  "${PROXY_ENV[@]}" "$BIN/prism-proxy" --config "$WORK/$mode/prism.yaml" \
    >"$WORK/$mode/proxy.out" 2>"$WORK/$mode/proxy.log" &
  PIDS+=("$!")
  ADDR[$mode]="127.0.0.1:$port"
  ok=0
  for _ in $(seq 1 100); do
    if "$BIN/prism-pubsub-bench" -a "${ADDR[$mode]}" -n default -d 0.05 -c 1 >/dev/null 2>&1; then
      ok=1
      break
    fi
    sleep 0.1
  done
  [ "$ok" = 1 ] || { echo "bench-pubsub: proxy $mode not serving" >&2; cat "$WORK/$mode/proxy.log" >&2; exit 1; }
done

for r in $(seq 1 "$ROUNDS"); do
  order="off on"
  [ $((r % 2)) = 0 ] && order="on off"
  for mode in $order; do
    "$BIN/prism-pubsub-bench" -a "${ADDR[$mode]}" -n default -s "bench.$mode" -d "$DURATION" \
      -c "$CONCURRENCY" --size "$SIZE" >>"$WORK/$mode.jsonl"
  done
done

TABLE=$(python3 - "$WORK" <<'PY'
import json, statistics, sys
work = sys.argv[1]
rows = {}
for mode in ("off", "on"):
    runs = [json.loads(l) for l in open(f"{work}/{mode}.jsonl")]
    rows[mode] = {k: statistics.median(r[k] for r in runs)
                  for k in ("publish_per_second", "latency_p50_us", "latency_p99_us")}
    rows[mode]["lost"] = sum(r["published"] - r["received"] for r in runs)
    rows[mode]["dropped"] = sum(r["dropped"] for r in runs)
print("| path | publishes/s (median) | delivery latency p50 | p99 | not delivered (all rounds) |")
print("|---|---|---|---|---|")
for mode, label in (("off", "tracing off"), ("on", "tracing on (always_on, file)")):
    r = rows[mode]
    print(f"| {label} | {r['publish_per_second']:.0f} | {r['latency_p50_us']:.0f} µs | "
          f"{r['latency_p99_us']:.0f} µs | {r['lost']} |")
ratio = rows["on"]["publish_per_second"] / rows["off"]["publish_per_second"]
print(f"\ntracing on / off, publishes/s: {ratio:.2f}")
PY
)
echo "$TABLE"
if [ "$RECORD" = 1 ]; then
  {
    echo
    echo "Run $(date -u +%Y-%m-%dT%H:%MZ): ROUNDS=$ROUNDS DURATION=$DURATION CONCURRENCY=$CONCURRENCY SIZE=$SIZE"
    echo
    echo "$TABLE"
  } >>"$ROOT/docs/benchmarks.md"
fi
