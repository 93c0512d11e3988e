#!/bin/sh
# Usage: check-file-age.sh <file_path> [max_age_seconds]
# Prints the file's age in seconds and exits 0 when it was modified at most
# max_age_seconds (default 60) ago; exits 1 with a message on stderr otherwise.
# POSIX sh: runs under dash, busybox sh and bash alike.
set -eu

if [ "$#" -lt 1 ] || [ -z "$1" ]; then
  echo "Usage: $0 <file_path> [max_age_seconds]" >&2
  exit 1
fi
HEALTH_FILE=$1
MAX_AGE_SECONDS=${2:-60}
case $MAX_AGE_SECONDS in
  '' | *[!0-9]*)
    echo "Invalid max age: $MAX_AGE_SECONDS (expected whole seconds)" >&2
    exit 1
    ;;
esac

if [ ! -f "$HEALTH_FILE" ]; then
  echo "Health file missing: $HEALTH_FILE" >&2
  exit 1
fi
if ! MODIFIED=$(stat -c %Y "$HEALTH_FILE" 2>/dev/null); then
  echo "Health file missing: $HEALTH_FILE" >&2
  exit 1
fi
FILE_AGE=$(($(date +%s) - MODIFIED))

if [ "$FILE_AGE" -gt "$MAX_AGE_SECONDS" ]; then
  echo "Health file stale: ${FILE_AGE}s old (max: ${MAX_AGE_SECONDS}s)" >&2
  exit 1
fi
echo "$FILE_AGE"
