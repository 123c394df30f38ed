#!/bin/sh
# Installs the npm packages of a test peer (pinned by its package-lock.json)
# when node_modules is missing or older than the lock file.
# Usage: scripts/npm-ci-if-stale.sh DIR
set -eu
cd "$1"
if ! command -v npm >/dev/null 2>&1; then
  echo "$1: npm not found (scripts/bootstrap.sh installs it)" >&2
  exit 1
fi
stamp=node_modules/.package-lock.json
if [ -f "$stamp" ] && [ ! package-lock.json -nt "$stamp" ] && [ ! package.json -nt "$stamp" ]; then
  exit 0
fi
npm ci --no-audit --no-fund --loglevel=error
