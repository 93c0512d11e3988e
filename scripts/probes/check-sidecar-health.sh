#!/bin/sh
# Usage: check-sidecar-health.sh [max_age_seconds]
# Liveness of the sidecar: it keeps rewriting the status file (default max age 90 s,
# a check interval plus slack), whatever the checks' result. HEALTH_FILE_PATH
# overrides the file the sidecar configured.
set -eu

HEALTH_FILE=${HEALTH_FILE_PATH:-@HEALTH_FILE@}
MAX_AGE=${1:-90}
# Through `sh`, not the exec bit: the helper still runs from a noexec volume.
SCRIPT_DIR=$(dirname "$0")

FILE_AGE=$(sh "$SCRIPT_DIR/check-file-age.sh" "$HEALTH_FILE" "$MAX_AGE") || exit 1
printf 'Health checker active (%ss ago)\n' "$FILE_AGE"
