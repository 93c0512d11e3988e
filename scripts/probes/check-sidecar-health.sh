#!/bin/sh
# Usage: check-sidecar-health.sh [max_age_seconds]
# Liveness of the sidecar: it keeps rewriting the status file (default max age 90 s),
# whatever the checks' result. HEALTH_FILE_PATH overrides the file.
set -eu

HEALTH_FILE=${HEALTH_FILE_PATH:-@HEALTH_FILE@}
MAX_AGE=${1:-90}
SCRIPT_DIR=$(dirname "$0")

FILE_AGE=$(sh "$SCRIPT_DIR/check-file-age.sh" "$HEALTH_FILE" "$MAX_AGE") || exit 1
echo "Health checker active (${FILE_AGE}s ago)"
