#!/bin/sh
# Usage: check-file-age.sh <file_path> [max_age_seconds]
# Prints the file's age in seconds and exits 0 when it was modified at most
# max_age_seconds (default 60) ago; exits 1 with a message on stderr otherwise.
# POSIX sh: runs under dash, busybox sh and bash alike. printf, not echo: dash's
# echo would interpret backslashes in a path.
set -eu

if [ "$#" -lt 1 ] || [ -z "$1" ]; then
  printf 'Usage: %s <file_path> [max_age_seconds]\n' "$0" >&2
  exit 1
fi
HEALTH_FILE=$1
MAX_AGE_SECONDS=${2:-60}
# Over 9 digits, test(1) errors out and the `if` below would read that as "fresh".
case $MAX_AGE_SECONDS in
  '' | *[!0-9]* | ??????????*)
    printf 'Invalid max age: %s (expected whole seconds)\n' "$MAX_AGE_SECONDS" >&2
    exit 1
    ;;
esac

if [ ! -f "$HEALTH_FILE" ]; then
  printf 'Health file missing: %s\n' "$HEALTH_FILE" >&2
  exit 1
fi
# The file may be replaced or removed between the test above and this stat.
# `--`: a relative path may start with a dash.
if ! MODIFIED=$(stat -c %Y -- "$HEALTH_FILE" 2>/dev/null); then
  printf 'Health file missing: %s\n' "$HEALTH_FILE" >&2
  exit 1
fi
FILE_AGE=$(($(date +%s) - MODIFIED))

# Strictly greater, like smee-sidecar: a file exactly max_age old still passes.
if [ "$FILE_AGE" -gt "$MAX_AGE_SECONDS" ]; then
  printf 'Health file stale: %ss old (max: %ss)\n' "$FILE_AGE" "$MAX_AGE_SECONDS" >&2
  exit 1
fi
printf '%s\n' "$FILE_AGE"
