#!/usr/bin/env bash
# Image check: builds the real image from the Dockerfile (scripts/build-image.sh,
# buildah) and runs it (podman, runc), then checks on the image itself:
#   - its default user is not root (the Dockerfile's USER, and `id -u` in a container);
#   - it runs with a read-only root filesystem (podman --read-only; writes to / and /app
#     fail inside it, /tmp and the shared volume take them);
#   - /healthz answers, /readyz answers once a health check has gone round through a
#     stand-in smee channel, on the image's default ports (management 9100, relay 8080);
#   - a signed webhook is relayed byte for byte to a downstream;
#   - the probe scripts it writes into the shared volume pass, run by the image's own /bin/sh;
#   - the management plane's writes and /debug/* answer a loopback caller and refuse
#     (403) a caller from another address;
#   - SIGTERM makes it exit 0, with no error logged.
#
# The container gets a network namespace of its own, made here and kept as a file in
# the temporary folder: the stand-in peers (scripts/check-peers.mjs) and curl run inside
# it, so nothing on the host's ports is touched; a documentation address (192.0.2.1)
# added to that namespace's own lo stands for "another machine" as a caller, without
# any packet leaving the namespace.
#
# Everything (images, layers, containers, the namespace) lives in one temporary folder,
# removed at the end (IMAGE_CHECK_KEEP=1 keeps it; IMAGE_CHECK_STORE=DIR builds into
# and keeps DIR, so that a second run reuses its base image and layers).
#
# Needs: root, buildah, podman, runc, mmdebstrap (scripts/install-test-peers.sh), curl,
# nsenter, unshare and ip, and `npm ci` done (the dev dependency `node` is the image's
# Node binary). Takes a few minutes on two cores: see docs/operations.md.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
STARTED_AT=$(date +%s%N)
NAME=pod-sidecar-image-check
RUN_AS=65532
RELAY_PORT=8080       # the image's defaults, deliberately not set below
MANAGEMENT_PORT=9100
PEERS_PORT=8090
OTHER_ADDRESS=192.0.2.1  # TEST-NET-1 (RFC 5737), only ever inside the namespace

say() { printf 'image-check: %s\n' "$*"; }
ms_since() { echo "$((($(date +%s%N) - $1) / 1000000))"; }

STORE=''
WORK=''
KEEP=${IMAGE_CHECK_KEEP:-}
PEERS_PID=''
NETNS=''
CONTAINER_STARTED=no

show_logs() {
  if [ "$CONTAINER_STARTED" = yes ]; then
    echo '--- container log (last 60 lines) ---' >&2
    podman_ logs --tail 60 "$NAME" >&2 2>&1 || true
    echo '--- end of container log ---' >&2
  fi
  show_peers_log
}

fail() {
  printf 'image-check: FAILED: %s\n' "$*" >&2
  show_logs
  exit 1
}

cleanup() {
  local status=$?
  if [ -n "$PEERS_PID" ]; then
    kill -TERM "$PEERS_PID" 2>/dev/null || true
    wait "$PEERS_PID" 2>/dev/null || true
  fi
  if [ "$CONTAINER_STARTED" = yes ]; then
    podman_ rm --force --time 0 "$NAME" >/dev/null 2>&1 || true
  fi
  if [ -n "$NETNS" ]; then
    umount "$NETNS" 2>/dev/null || true
  fi
  if [ -n "$STORE" ] && [ -d "$STORE" ]; then
    if [ -n "$KEEP" ]; then
      say "kept $STORE"
    else
      # Containers and working containers first, so that no mount is left under the store.
      podman_ rm --all --force >/dev/null 2>&1 || true
      buildah_ rm --all >/dev/null 2>&1 || true
      rm -rf "$STORE"
    fi
  fi
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- prerequisites -------------------------------------------------------------------

[ "$(id -u)" = 0 ] || fail "must run as root (buildah and podman without a user namespace)"
for tool in buildah podman runc mmdebstrap curl nsenter unshare ip sha256sum; do
  command -v "$tool" >/dev/null || fail "$tool is not installed (bash scripts/install-test-peers.sh installs the container tools)"
done
NODE_BIN=$(readlink -f "$ROOT/node_modules/.bin/node" 2>/dev/null || true)
[ -n "$NODE_BIN" ] && [ -x "$NODE_BIN" ] || fail "node_modules/.bin/node is missing: run 'npm ci' first"

if [ -n "${IMAGE_CHECK_STORE:-}" ]; then
  mkdir -p "$IMAGE_CHECK_STORE"
  STORE=$(cd "$IMAGE_CHECK_STORE" && pwd)
  KEEP=1
else
  STORE=$(mktemp -d "${TMPDIR:-/tmp}/pod-sidecar-image.XXXXXX")
fi
chmod 0755 "$STORE"
# shellcheck source=scripts/container-store.sh
source "$ROOT/scripts/container-store.sh"
WORK="$STORE/check"
rm -rf "$WORK"
mkdir -p "$WORK" "$STORE/podman-tmp"
# shellcheck source=scripts/check-kit.sh
source "$ROOT/scripts/check-kit.sh"

# --- build ---------------------------------------------------------------------------

BUILD_START=$(date +%s%N)
IMAGE=$(bash "$ROOT/scripts/build-image.sh" --store "$STORE" --tag localhost/pod-sidecar:image-check | tail -n 1) ||
  fail "the image did not build"
BUILD_MS=$(ms_since "$BUILD_START")
SIZE=$(podman_ image inspect --format '{{.Size}}' "$IMAGE")
say "built $IMAGE in $((BUILD_MS / 1000)) s, $((SIZE / 1024 / 1024)) MiB"

# --- default user --------------------------------------------------------------------

USER_FIELD=$(podman_ image inspect --format '{{.Config.User}}' "$IMAGE")
case ${USER_FIELD%%:*} in
  ''|0|root) fail "the image's default user is '${USER_FIELD}': it runs as root (runAsNonRoot refuses such a pod)" ;;
esac
[[ ${USER_FIELD%%:*} =~ ^[0-9]+$ ]] || fail "the image's USER '$USER_FIELD' is not numeric: runAsNonRoot cannot verify a user name"

# podman's default ulimits (and even the host's own hard process limit) can be above
# what root may set here without CAP_SYS_RESOURCE (runc: "error setting rlimit ...
# operation not permitted"): open files as the host has them, and a process count that
# a single Node process never nears.
NOFILE=$(ulimit -Hn)
[ "$NOFILE" = unlimited ] && NOFILE=65536
LIMITS=(--ulimit "nofile=$NOFILE:$NOFILE" --ulimit nproc=4096:4096)
UID_IN_IMAGE=$(podman_ run --rm --network none "${LIMITS[@]}" --entrypoint id "$IMAGE" -u) ||
  fail "could not run id in the image"
[ "$UID_IN_IMAGE" = "$RUN_AS" ] || fail "id -u in the image printed $UID_IN_IMAGE, expected $RUN_AS"
say "default user: USER $USER_FIELD, id -u in a container: $UID_IN_IMAGE"

# --- network namespace and peers -----------------------------------------------------

NETNS="$STORE/netns"
touch "$NETNS"
unshare --net="$NETNS" true || { NETNS=''; fail "could not make a network namespace"; }
in_netns() { nsenter --net="$NETNS" -- "$@"; }
in_netns ip link set lo up
# On lo, as no interface type may be loadable here: what counts is the caller's address.
in_netns ip addr add "$OTHER_ADDRESS/32" dev lo
CURL=(in_netns curl)

in_netns "$NODE_BIN" "$ROOT/scripts/check-peers.mjs" "$PEERS_PORT" "$RELAY_PORT" "$WORK/received.jsonl" >"$WORK/peers.log" 2>&1 &
PEERS_PID=$!
for _ in $(seq 1 100); do
  grep -q 'peers listening' "$WORK/peers.log" 2>/dev/null && break
  kill -0 "$PEERS_PID" 2>/dev/null || fail "the downstream stand-in did not start"
  sleep 0.05
done

# --- run -----------------------------------------------------------------------------

SHARED="$WORK/shared"
mkdir -p "$SHARED"
chown "$RUN_AS:$RUN_AS" "$SHARED"
RUN_START=$(date +%s%N)
CONTAINER_STARTED=yes
podman_ run --detach --name "$NAME" --network "ns:$NETNS" --read-only \
  --cap-drop all --security-opt no-new-privileges "${LIMITS[@]}" \
  --volume "$SHARED:/shared" \
  --env "DOWNSTREAM_SERVICE_URL=http://127.0.0.1:$PEERS_PORT/webhook" \
  --env "SMEE_CHANNEL_URL=http://127.0.0.1:$PEERS_PORT/channel/image-check" \
  --env HEALTH_CHECK_TIMEOUT_SECONDS=10 --env ENABLE_PPROF=true \
  "$IMAGE" >/dev/null || fail "podman run failed"

MANAGEMENT="http://127.0.0.1:$MANAGEMENT_PORT"
RELAY="http://127.0.0.1:$RELAY_PORT"

running() { [ "$(podman_ inspect --format '{{.State.Running}}' "$NAME" 2>/dev/null)" = true ]; }

# wait_for URL SECONDS: until URL answers 200 inside the namespace.
wait_for() {
  local url=$1 seconds=$2 code=''
  for _ in $(seq 1 $((seconds * 10))); do
    running || fail "the container exited ($(podman_ inspect --format '{{.State.ExitCode}}' "$NAME")) before $url answered 200"
    code=$(in_netns curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$url" || true)
    [ "$code" = 200 ] && return 0
    sleep 0.1
  done
  fail "$url did not answer 200 within ${seconds}s (last answer: ${code:-none})"
}

wait_for "$MANAGEMENT/healthz" 30
say "/healthz answered 200 on port $MANAGEMENT_PORT, $(ms_since "$RUN_START") ms after podman run"
wait_for "$MANAGEMENT/readyz" 30
say "/readyz answered 200: the first health check went round through the channel"

PID_ON_HOST=$(podman_ inspect --format '{{.State.Pid}}' "$NAME")
PROCESS_UID=$(awk '/^Uid:/ { print $2 }' "/proc/$PID_ON_HOST/status")
[ "$PROCESS_UID" = "$RUN_AS" ] || fail "the sidecar's process runs as uid $PROCESS_UID, expected $RUN_AS"

relay_signed_webhook "$RELAY" "$WORK/received.jsonl" image-check

# --- read-only root and the probe scripts --------------------------------------------

for path in /app/dist/written-by-image-check /etc/written-by-image-check /written-by-image-check; do
  if podman_ exec "$NAME" /bin/sh -c "echo x > $path" 2>/dev/null; then
    fail "$path could be written: the root filesystem is not read-only"
  fi
done
podman_ exec "$NAME" /bin/sh -c 'echo x > /tmp/scratch && rm /tmp/scratch' || fail "/tmp is not writable in the container"
say "root filesystem read-only (/, /etc and /app refuse writes), /tmp writable"

for script in check-smee-health.sh check-sidecar-health.sh; do
  [ -f "$SHARED/$script" ] || fail "$script was not written into the shared volume"
  out=$(podman_ exec "$NAME" /bin/sh "/shared/$script" 2>&1) || fail "the probe $script failed under the image's /bin/sh: $out"
  say "probe $script under the image's /bin/sh ($(podman_ exec "$NAME" readlink -f /bin/sh)): $out"
done

# --- management plane ----------------------------------------------------------------

code_of() { in_netns curl -s -o /dev/null -w '%{http_code}' --max-time 5 "$@" || true; }
[ "$(code_of "$MANAGEMENT/debug/runtime")" = 200 ] || fail "/debug/runtime did not answer a loopback caller"
[ "$(code_of --interface "$OTHER_ADDRESS" "http://$OTHER_ADDRESS:$MANAGEMENT_PORT/readyz")" = 200 ] ||
  fail "/readyz did not answer a caller from $OTHER_ADDRESS"
for path in /debug/runtime /debug/pprof/heap; do
  code=$(code_of --interface "$OTHER_ADDRESS" "http://$OTHER_ADDRESS:$MANAGEMENT_PORT$path")
  [ "$code" = 403 ] || fail "$path answered $code to a caller from $OTHER_ADDRESS without a token, expected 403"
done
say "management: /debug/* answers loopback, 403 to $OTHER_ADDRESS; /readyz open to both"

# --- graceful stop -------------------------------------------------------------------

podman_ kill --signal TERM "$NAME" >/dev/null
for _ in $(seq 1 300); do running || break; sleep 0.1; done
running && fail "the container did not stop within 30 s of SIGTERM"
EXIT_CODE=$(podman_ inspect --format '{{.State.ExitCode}}' "$NAME")
[ "$EXIT_CODE" = 0 ] || fail "the container exited with status $EXIT_CODE after SIGTERM, expected 0"
if podman_ logs "$NAME" 2>&1 | grep -q '"level":"error"'; then fail "the sidecar logged an error"; fi
say "SIGTERM: exit status 0"

say "passed in $(($(ms_since "$STARTED_AT") / 1000)) s (image build $((BUILD_MS / 1000)) s, image $((SIZE / 1024 / 1024)) MiB)"
