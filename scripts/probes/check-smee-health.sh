#!/bin/sh
# Usage: check-smee-health.sh [max_age_seconds]
# Liveness of the smee client: the status file is fresh (default 60 s) and its last
# end-to-end health check succeeded. HEALTH_FILE_PATH overrides the file.
set -eu

HEALTH_FILE=${HEALTH_FILE_PATH:-@HEALTH_FILE@}
MAX_AGE=${1:-60}
SCRIPT_DIR=$(dirname "$0")

FILE_AGE=$(sh "$SCRIPT_DIR/check-file-age.sh" "$HEALTH_FILE" "$MAX_AGE") || exit 1

STATUS=$(sed -n 's/^status=//p' "$HEALTH_FILE" | head -n 1)
if [ "$STATUS" != "success" ]; then
  MESSAGE=$(sed -n 's/^message=//p' "$HEALTH_FILE" | head -n 1)
  echo "Health check failed: ${STATUS:-unknown} - ${MESSAGE:-no message}"
  exit 1
fi
echo "Health check passed (${FILE_AGE}s old)"
