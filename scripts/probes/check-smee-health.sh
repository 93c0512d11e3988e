#!/bin/sh
# Usage: check-smee-health.sh [max_age_seconds]
# Liveness of the smee client: the status file is fresh (default 60 s) and its last
# end-to-end health check succeeded. HEALTH_FILE_PATH overrides the file the
# sidecar configured.
set -eu

HEALTH_FILE=${HEALTH_FILE_PATH:-@HEALTH_FILE@}
MAX_AGE=${1:-60}
# Through `sh`, not the exec bit: the helper still runs from a noexec volume.
SCRIPT_DIR=$(dirname "$0")

FILE_AGE=$(sh "$SCRIPT_DIR/check-file-age.sh" "$HEALTH_FILE" "$MAX_AGE") || exit 1

# First match only; a file that vanished since the age check reads as no status.
# Redirections, not file operands: a relative path may start with a dash.
STATUS=$(sed -n 's/^status=//p' 2>/dev/null <"$HEALTH_FILE" | head -n 1)
if [ "$STATUS" != "success" ]; then
  MESSAGE=$(sed -n 's/^message=//p' 2>/dev/null <"$HEALTH_FILE" | head -n 1)
  # smee-sidecar prints this on stdout; printf because the message may hold backslashes.
  printf 'Health check failed: %s - %s\n' "${STATUS:-unknown}" "${MESSAGE:-no message}"
  exit 1
fi
printf 'Health check passed (%ss old)\n' "$FILE_AGE"
