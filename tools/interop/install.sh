#!/bin/sh
# This peer's npm packages (pinned by package-lock.json), installed when stale.
exec "$(dirname "$0")/../../scripts/npm-ci-if-stale.sh" "$(dirname "$0")"
