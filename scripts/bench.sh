#!/usr/bin/env bash
# `make bench`: the Google Benchmark programs, repeated so medians can be
# quoted (see docs/benchmarks.md), then the proxy side-by-side runs
# (memstore, and PostgreSQL on a throwaway server).
# Usage: scripts/bench.sh [BUILD_DIR]
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${1:-build}
case "$BUILD" in /*) ;; *) BUILD="$ROOT/$BUILD" ;; esac
REPS=${REPS:-5}

echo "== tracing SDK (median of $REPS repetitions, three runs)"
for _ in 1 2 3; do
  "$BUILD/bench/prism_bench_sdk" --benchmark_repetitions="$REPS" \
    --benchmark_report_aggregates_only=true | grep median
done
echo "== export"
"$BUILD/bench/prism_bench_export" --benchmark_repetitions="$REPS" \
  --benchmark_report_aggregates_only=true | grep median
echo "== proxy vs direct (scripts/bench-proxy.sh)"
bash "$ROOT/scripts/bench-proxy.sh" "$BUILD"
echo "== proxy -> postgres, tracing and the sqlcommenter comment (scripts/bench-proxy-postgres.sh)"
bash "$ROOT/scripts/bench-proxy-postgres.sh" "$BUILD"
if command -v valgrind >/dev/null; then
  echo "== proxy instructions per call (scripts/bench-proxy-instructions.sh)"
  bash "$ROOT/scripts/bench-proxy-instructions.sh" "$BUILD"
else
  echo "== skipping scripts/bench-proxy-instructions.sh: needs valgrind (apt-get install valgrind)"
fi
