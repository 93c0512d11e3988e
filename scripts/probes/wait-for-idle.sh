#!/bin/sh
# Usage: wait-for-idle.sh [timeout_seconds]
# For a preStop hook in the main container: returns once the monitored port has had no
# ESTABLISHED connection for the settle time, or after timeout_seconds (default 25, under
# Kubernetes' default grace period of 30 s). It reads only the state file the sidecar
# rewrites every REFRESH_RATE_SECONDS: no curl, no network.
#
# Exit status:
#   0  idle for the settle time
#   1  timed out with the port still busy
#   2  no usable state, returned at once: the file is missing, stale (the sidecar stopped
#      rewriting it) or says the sidecar cannot read the kernel's socket tables
#   3  invalid argument
# The kubelet ignores a preStop hook's exit status but records a failure as an event.
#
# CONNECTIONS_FILE_PATH and IDLE_SETTLE_SECONDS in the calling container override the
# values the sidecar was configured with. POSIX sh: runs under dash, busybox sh and bash.
set -u

STATE_FILE=${CONNECTIONS_FILE_PATH:-@STATE_FILE@}
SETTLE=${IDLE_SETTLE_SECONDS:-@SETTLE_SECONDS@}
# Two refresh intervals and some slack: older than this, nobody is rewriting the file.
STALE_AFTER=@STALE_AFTER@
TIMEOUT=${1:-25}

# Over 9 digits, test(1) errors out and the comparisons below would misread it.
whole_seconds() {
  case $2 in
    '' | *[!0-9]* | ??????????*)
      printf 'Invalid %s: %s (expected whole seconds)\n' "$1" "$2" >&2
      exit 3
      ;;
  esac
}
whole_seconds timeout "$TIMEOUT"
whole_seconds 'settle time' "$SETTLE"

give_up() {
  printf '%s; not waiting\n' "$1" >&2
  exit 2
}

# One read of the file through one descriptor: the sidecar replaces it by rename, so every
# field comes from the same version.
read_state() {
  STATUS='' UPDATED_AT='' ACTIVE='' IDLE_SINCE='' ERROR=''
  [ -f "$STATE_FILE" ] || return 1
  {
    while IFS= read -r line || [ -n "$line" ]; do
      case $line in
        status=*) STATUS=${line#status=} ;;
        updated_at=*) UPDATED_AT=${line#updated_at=} ;;
        active_connections=*) ACTIVE=${line#active_connections=} ;;
        idle_since=*) IDLE_SINCE=${line#idle_since=} ;;
        error=*) ERROR=${line#error=} ;;
      esac
    done
  } 2>/dev/null <"$STATE_FILE"
}

is_number() {
  case $1 in
    '' | *[!0-9]*) return 1 ;;
  esac
}

# Time waited is counted in sleeps, not read off the clock alone: date(1) has whole
# seconds, and START and NOW read either side of a second's turn would end a 1 s wait at
# once. The clock still bounds it (a slow loop stops at TIMEOUT + 1 by the clock).
START=$(date +%s)
WAITED=0
while :; do
  NOW=$(date +%s)
  read_state || give_up "Connections state missing: $STATE_FILE (is the sidecar running with MONITOR_PORT set?)"
  case $STATUS in
    ok) ;;
    error) give_up "The sidecar cannot read the socket tables: ${ERROR:-no reason given}" ;;
    *) give_up "Connections state unreadable: $STATE_FILE" ;;
  esac
  if ! is_number "$UPDATED_AT" || ! is_number "$ACTIVE" || { [ -n "$IDLE_SINCE" ] && ! is_number "$IDLE_SINCE"; }; then
    give_up "Connections state unreadable: $STATE_FILE"
  fi
  AGE=$((NOW - UPDATED_AT))
  if [ "$AGE" -gt "$STALE_AFTER" ]; then
    give_up "Connections state stale: ${AGE}s old (max: ${STALE_AFTER}s), the sidecar is not updating it"
  fi

  IDLE=-1
  if [ "$ACTIVE" -eq 0 ] && [ -n "$IDLE_SINCE" ]; then
    IDLE=$((NOW - IDLE_SINCE))
    if [ "$IDLE" -ge "$SETTLE" ]; then
      printf 'Idle: no active connection for %ss (settle time %ss)\n' "$IDLE" "$SETTLE"
      exit 0
    fi
  fi
  if [ "$WAITED" -ge "$TIMEOUT" ] || [ "$((NOW - START))" -gt "$TIMEOUT" ]; then
    if [ "$ACTIVE" -gt 0 ]; then
      printf 'Timed out after %ss: %s active connection(s)\n' "$WAITED" "$ACTIVE" >&2
    else
      printf 'Timed out after %ss: idle for %ss only (settle time %ss)\n' "$WAITED" "$((IDLE < 0 ? 0 : IDLE))" "$SETTLE" >&2
    fi
    exit 1
  fi
  sleep 1
  WAITED=$((WAITED + 1))
done
