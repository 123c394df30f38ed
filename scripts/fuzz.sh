#!/usr/bin/env bash
# Builds the libFuzzer targets of tracing/fuzz (W3C header parsers) and
# proxy/fuzz (the proxy's request check and metadata handling before
# forwarding) with clang (in build-fuzz/) and runs each for FUZZ_SECONDS
# (default 20) from its seed corpus. Exits non-zero
# when a target crashes, leaks or fails its round-trip check.
#
#   FUZZ_SECONDS=60 scripts/fuzz.sh              # all five targets
#   scripts/fuzz.sh traceparent                  # only some
#   FUZZ_BUILD_DIR=/tmp/bf FUZZ_JOBS=1 scripts/fuzz.sh
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD="${FUZZ_BUILD_DIR:-$ROOT/build-fuzz}"
SECONDS_PER_TARGET="${FUZZ_SECONDS:-20}"
JOBS="${FUZZ_JOBS:-2}"
CXX_COMPILER="${FUZZ_CXX:-clang++}"
TARGETS=("$@")
if [ "${#TARGETS[@]}" -eq 0 ]; then
  TARGETS=(traceparent tracestate baggage proxy_wire proxy_metadata)
fi
# proxy_* targets live in proxy/fuzz, the others in tracing/fuzz.
component() { case "$1" in proxy_*) echo proxy/fuzz ;; *) echo tracing/fuzz ;; esac; }

command -v "$CXX_COMPILER" >/dev/null || { echo "fuzz.sh: $CXX_COMPILER not found" >&2; exit 2; }

cmake -S "$ROOT" -B "$BUILD" -DCMAKE_CXX_COMPILER="$CXX_COMPILER" \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPRISM_FUZZ=ON -DPRISM_UNIT_ONLY=ON -DPRISM_BENCH=OFF \
  >/dev/null
build_targets=()
for t in "${TARGETS[@]}"; do build_targets+=("prism_fuzz_$t"); done
cmake --build "$BUILD" -j"$JOBS" --target "${build_targets[@]}"

status=0
for t in "${TARGETS[@]}"; do
  dir="$(component "$t")"
  seeds="$ROOT/$dir/corpus/$t"
  # New inputs go to a scratch corpus; the checked-in seeds stay untouched.
  work="$BUILD/fuzz-corpus/$t"
  artifacts="$BUILD/fuzz-artifacts/$t/"
  mkdir -p "$work" "$artifacts"
  echo "fuzz.sh: $t for ${SECONDS_PER_TARGET}s"
  if ! "$BUILD/$dir/prism_fuzz_$t" -max_total_time="$SECONDS_PER_TARGET" \
      -print_final_stats=1 -artifact_prefix="$artifacts" "$work" "$seeds" \
      >"$BUILD/fuzz-$t.log" 2>&1; then
    echo "fuzz.sh: $t FAILED (log: $BUILD/fuzz-$t.log, artifacts: $artifacts)" >&2
    tail -n 40 "$BUILD/fuzz-$t.log" >&2
    status=1
  else
    grep -E "stat::number_of_executed_units|stat::new_units_added" "$BUILD/fuzz-$t.log" \
      | sed "s/^/fuzz.sh: $t /"
  fi
done
exit "$status"
