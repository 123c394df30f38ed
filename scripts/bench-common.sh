# Shared by the proxy benchmarks (sourced, not run).

# wait_serving ADDRESS [SECONDS]: until a Get through prism-loadgen ($BIN)
# succeeds, at most SECONDS (default 10; servers under valgrind need ~30).
wait_serving() {
  local tries=$(( ${2:-10} * 10 ))
  for _ in $(seq 1 "$tries"); do
    if "$BIN/prism-loadgen" -a "$1" -d 0.05 -w 0 -c 1 --json >/dev/null 2>&1; then return 0; fi
    sleep 0.1
  done
  echo "$(basename "$0"): $1 is not serving" >&2
  return 1
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# proxy_setup DIR PORT MODE [EXTRA_YAML]: writes DIR/prism.yaml (namespace "default" on a
# memstore plugin, or on the YAML command list in $PROXY_PLUGIN) and sets
# PROXY_ENV, the env(1) prefix for tracing MODE:
# off (OTEL_SDK_DISABLED), never (parentbased_always_off: context still
# extracted and injected, nothing recorded), ratio (parentbased_traceidratio
# 0.01), on (always_on) or recorded (always_on with OTEL_TRACES_EXPORTER=none:
# spans recorded, then dropped - the cost of recording without the export)
# or adaptive (prism_adaptive: ratio 0.01, slow 100 ms - every call recorded,
# 1 % exported; docs/sampling.md); traces go to DIR/traces.jsonl.
proxy_setup() {
  local dir=$1 port=$2 mode=$3 extra=${4:-}
  mkdir -p "$dir"
  cat >"$dir/prism.yaml" <<YAML
listen: 127.0.0.1:$port
data_dir: $dir/data
$extra
namespaces:
  default:
    plugin:
      command: ${PROXY_PLUGIN:-[prism-plugin-memstore]}
YAML
  PROXY_ENV=(env -u OTEL_TRACES_SAMPLER -u OTEL_TRACES_SAMPLER_ARG -u OTEL_SDK_DISABLED
             -u OTEL_TRACES_EXPORTER -u OTEL_EXPORTER_OTLP_ENDPOINT
             "PRISM_TRACE_FILE=$dir/traces.jsonl")
  case $mode in
    off) PROXY_ENV+=(OTEL_SDK_DISABLED=true) ;;
    never) PROXY_ENV+=(OTEL_TRACES_SAMPLER=parentbased_always_off) ;;
    ratio) PROXY_ENV+=(OTEL_TRACES_SAMPLER=parentbased_traceidratio OTEL_TRACES_SAMPLER_ARG=0.01) ;;
    on) PROXY_ENV+=(OTEL_TRACES_SAMPLER=always_on) ;;
    recorded) PROXY_ENV+=(OTEL_TRACES_SAMPLER=always_on OTEL_TRACES_EXPORTER=none) ;;
    adaptive) PROXY_ENV+=(OTEL_TRACES_SAMPLER=prism_adaptive
                          OTEL_TRACES_SAMPLER_ARG=ratio=0.01,slow_ms=100) ;;
  esac
}
