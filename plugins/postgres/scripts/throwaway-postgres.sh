#!/usr/bin/env bash
# A throwaway local PostgreSQL for trying prism-plugin-postgres and for its
# tests: initdb in a fresh temporary directory, listening on 127.0.0.1 only
# (a free port) and on a Unix socket inside that directory, trust
# authentication for the user `prism` (loopback only: nobody else can reach
# it), fsync off (throwaway data). Everything lives in the one directory.
#
#   throwaway-postgres.sh start [--owner-pid PID] [--log-statements]
#       creates DIR, starts the server, prints KEY=VALUE lines:
#       DIR= PGHOST= PGPORT= PGUSER= PGDATABASE= CONNINFO= LOG=
#       --owner-pid: the server is destroyed when process PID ends (so a
#       test that crashes or is killed leaves nothing running)
#       --log-statements: log_statement=all into LOG (with the parameters)
#   throwaway-postgres.sh start DIR     starts an existing (stopped) server again, same port
#   throwaway-postgres.sh stop DIR      stops it (fast shutdown), keeps the data
#   throwaway-postgres.sh destroy DIR   stops it and removes DIR
#
# initdb/postgres refuse to run as root: as root they run as the `postgres`
# system user (the Debian package creates it) and DIR belongs to it; as any
# other user they run directly.
set -euo pipefail
umask 077

PGBIN=${PGBIN:-}
if [ -z "$PGBIN" ]; then
  for v in 17 16 15 14 13; do
    if [ -x "/usr/lib/postgresql/$v/bin/initdb" ]; then PGBIN=/usr/lib/postgresql/$v/bin; break; fi
  done
fi
[ -n "$PGBIN" ] && [ -x "$PGBIN/initdb" ] || {
  echo "throwaway-postgres: PostgreSQL server binaries not found (scripts/bootstrap.sh installs 'postgresql')" >&2
  exit 1
}

as_pg() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

server_start() {  # DIR PORT LOG_STATEMENTS
  local dir=$1 port=$2 logst=$3 opts
  opts="-c listen_addresses=127.0.0.1 -c port=$port -c unix_socket_directories=$dir"
  opts="$opts -c fsync=off -c full_page_writes=off -c shared_buffers=16MB -c max_connections=40"
  if [ "$logst" = 1 ]; then opts="$opts -c log_statement=all"; fi
  as_pg "$PGBIN/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 30 -o "$opts" start >/dev/null
}

print_env() {  # DIR PORT
  echo "DIR=$1"
  echo "PGHOST=127.0.0.1"
  echo "PGPORT=$2"
  echo "PGUSER=prism"
  echo "PGDATABASE=postgres"
  echo "CONNINFO=host=127.0.0.1 port=$2 user=prism dbname=postgres"
  echo "LOG=$1/server.log"
}

cmd=${1:-}
shift || true
case "$cmd" in
  start)
    if [ $# -ge 1 ] && [ "${1#--}" = "$1" ]; then  # start DIR: an existing server again
      dir=$1
      [ -f "$dir/port" ] || { echo "throwaway-postgres: $dir is not a throwaway server" >&2; exit 2; }
      server_start "$dir" "$(cat "$dir/port")" "$(cat "$dir/log_statements")"
      print_env "$dir" "$(cat "$dir/port")"
      exit 0
    fi
    owner="" logst=0
    while [ $# -gt 0 ]; do
      case "$1" in
        --owner-pid) owner=$2; shift 2 ;;
        --log-statements) logst=1; shift ;;
        *) echo "throwaway-postgres: unknown option $1" >&2; exit 2 ;;
      esac
    done
    # /tmp, not $TMPDIR: the postgres user must be able to reach it.
    base=/tmp
    [ "$(id -u)" -ne 0 ] && base=${TMPDIR:-/tmp}
    dir=$(mktemp -d "$base/prism-pg-XXXXXX")
    chmod 0700 "$dir"
    [ "$(id -u)" -eq 0 ] && chown postgres:postgres "$dir"
    as_pg "$PGBIN/initdb" -D "$dir/data" -U prism -A trust -E UTF8 --locale=C --no-sync \
      >"$dir/initdb.log" 2>&1 || { cat "$dir/initdb.log" >&2; rm -rf "$dir"; exit 1; }
    echo "$logst" >"$dir/log_statements"
    # A free port can be taken between the probe and the bind: try again.
    started=0
    for _ in 1 2 3 4 5; do
      port=$(free_port)
      if server_start "$dir" "$port" "$logst" 2>>"$dir/start.err"; then started=1; break; fi
    done
    if [ "$started" != 1 ]; then
      cat "$dir/start.err" "$dir/server.log" >&2 2>/dev/null || true
      rm -rf "$dir"
      exit 1
    fi
    echo "$port" >"$dir/port"
    if [ -n "$owner" ]; then
      # Detached from our stdout, so whoever reads it sees EOF now.
      setsid bash -c 'while kill -0 "$1" 2>/dev/null; do sleep 0.5; done; "$0" destroy "$2"' \
        "$(readlink -f "$0")" "$owner" "$dir" </dev/null >/dev/null 2>&1 &
      echo $! >"$dir/watchdog.pid"
    fi
    print_env "$dir" "$port"
    ;;
  stop)
    dir=${1:?usage: throwaway-postgres.sh stop DIR}
    as_pg "$PGBIN/pg_ctl" -D "$dir/data" -m fast -w -t 30 stop >/dev/null
    ;;
  destroy)
    dir=${1:?usage: throwaway-postgres.sh destroy DIR}
    [ -f "$dir/port" ] || [ -d "$dir/data" ] || exit 0
    if [ -f "$dir/watchdog.pid" ]; then
      w=$(cat "$dir/watchdog.pid")
      [ "$w" != "$$" ] && [ "$w" != "$PPID" ] && kill "$w" 2>/dev/null || true
    fi
    as_pg "$PGBIN/pg_ctl" -D "$dir/data" -m immediate -w -t 30 stop >/dev/null 2>&1 || true
    rm -rf "$dir"
    ;;
  *)
    sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'
    [ -z "$cmd" ] && exit 2
    [ "$cmd" = "-h" ] || [ "$cmd" = "--help" ] || exit 2
    ;;
esac
