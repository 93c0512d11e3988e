#!/usr/bin/env bash
# Runtime check: the image's runtime stage, reproduced without a Docker engine.
#
# What the Dockerfile does, done here in a fresh temporary directory:
#   1. build from a clean copy of the sources (`npm run build`, as the build stage);
#   2. lay out dist/, scripts/probes/, package.json and package-lock.json, and install
#      production dependencies only (`npm ci --omit=dev --ignore-scripts`, as the deps
#      stage); everything stays root-owned, as in the image;
#   3. start `node dist/main.js` with the image's NODE_OPTIONS as uid/gid 65532, no
#      supplementary groups, no new privileges, an empty environment but its settings,
#      and - where this machine allows a private mount namespace - a read-only root
#      filesystem in which only the shared volume and TMPDIR are writable;
#   4. with a downstream and a stand-in smee channel (server and client in one) beside
#      it: wait for /healthz, wait for /readyz (first health check round trip), relay
#      one signed webhook with curl and check it arrived byte for byte, run the probe
#      scripts as the container's user, read /metrics, send SIGTERM and expect exit 0.
#
# A module that dist/ needs but production dependencies lack, a missing
# scripts/probes/, a write outside /shared and /tmp, a Node option the image's Node
# refuses: each fails here with the sidecar's own log printed.
#
# Needs: root (to switch to uid 65532), setpriv (util-linux), curl, sha256sum, and the
# project's dev dependencies installed (node_modules/.bin/node is Node 24).
# Environment: RUNTIME_CHECK_KEEP=1 keeps the temporary directory for inspection.
# Single-quoted sh -c and node -e programs are expanded by their own interpreters:
# shellcheck disable=SC2016
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
RUN_AS=65532
STARTED_AT=$(date +%s%N)

WORK=''
SIDECAR_PID=''
PEERS_PID=''

say() { printf 'runtime-check: %s\n' "$*"; }
# shellcheck source=scripts/check-kit.sh
source "$ROOT/scripts/check-kit.sh"
elapsed() { echo "$((($(date +%s%N) - STARTED_AT) / 1000000)) ms"; }

show_logs() {
  if [ -n "$WORK" ] && [ -s "$WORK/sidecar.log" ]; then
    echo '--- sidecar log (last 60 lines) ---' >&2
    tail -n 60 "$WORK/sidecar.log" >&2
    echo '--- end of sidecar log ---' >&2
  fi
  show_peers_log
}

fail() {
  printf 'runtime-check: FAILED: %s\n' "$*" >&2
  show_logs
  exit 1
}

stop_pid() {
  local pid=$1
  [ -n "$pid" ] || return 0
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  fi
  wait "$pid" 2>/dev/null || true
}

cleanup() {
  local status=$?
  stop_pid "$SIDECAR_PID"
  stop_pid "$PEERS_PID"
  if [ -n "$WORK" ] && [ -d "$WORK" ]; then
    if [ "${RUNTIME_CHECK_KEEP:-}" = 1 ]; then
      say "kept $WORK"
    else
      rm -rf "$WORK"
    fi
  fi
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- prerequisites -------------------------------------------------------------------

[ "$(id -u)" = 0 ] || fail "must run as root, to start the sidecar as uid $RUN_AS (as the image's USER does)"
for tool in setpriv curl sha256sum npm; do
  command -v "$tool" >/dev/null || fail "$tool is not installed (setpriv comes with util-linux)"
done
NODE_BIN=$(readlink -f "$ROOT/node_modules/.bin/node" 2>/dev/null || true)
if [ -z "$NODE_BIN" ] || [ ! -x "$NODE_BIN" ]; then
  fail "node_modules/.bin/node is missing: run 'npm ci' first (the dev dependency 'node' is the image's Node 24)"
fi
NODE_MAJOR=$("$NODE_BIN" -p 'process.versions.node.split(".")[0]')
[ "$NODE_MAJOR" = 24 ] || fail "node_modules/.bin/node is $("$NODE_BIN" --version), the image runs Node 24"

# The image's NODE_OPTIONS, read from the Dockerfile so that the two cannot drift apart.
NODE_OPTIONS_IMAGE=$(sed -n 's/^.*NODE_OPTIONS="\([^"]*\)".*$/\1/p' "$ROOT/Dockerfile" | head -n 1)
[ -n "$NODE_OPTIONS_IMAGE" ] || fail "no NODE_OPTIONS=\"...\" found in the Dockerfile"

# dockerignore_allows PATH: .dockerignore re-includes PATH itself or a folder above it
# ("!scripts/probes/"). Enough for its allow-list of plain names; no glob is read.
dockerignore_allows() {
  local path=${1%/} line
  while IFS= read -r line; do
    [[ $line == '!'* ]] || continue
    line=${line#!}
    line=${line%/}
    [ "$path" = "$line" ] || [[ $path == "$line"/* ]] && return 0
  done <"$ROOT/.dockerignore"
  return 1
}

# What the Dockerfile copies from the build context must exist and be in the context
# (a rename, or a file the allow-list forgets, breaks the image).
while read -r -a words; do
  sources=()
  for w in "${words[@]:1}"; do [[ $w == --* ]] || sources+=("$w"); done
  unset 'sources[-1]'
  for src in "${sources[@]}"; do
    [ -e "$ROOT/$src" ] || fail "the Dockerfile copies $src from the build context, and there is no such file"
    dockerignore_allows "$src" || fail "the Dockerfile copies $src, and .dockerignore (an allow-list) leaves it out of the build context"
  done
done < <(grep -E '^COPY ' "$ROOT/Dockerfile" | grep -v -- '--from=')

# npm and every tool it starts run on Node 24, as in the image's build stages.
PATH="$(dirname "$NODE_BIN"):$PATH"
export PATH
unset NODE_OPTIONS

# Under /tmp, not $TMPDIR: uid 65532 must be able to reach it.
WORK=$(mktemp -d /tmp/pod-sidecar-runtime.XXXXXX)
chmod 0755 "$WORK"
APP="$WORK/app"          # the image's /app: root-owned, read-only to the process
SHARED="$WORK/shared"    # the pod's shared emptyDir
SCRATCH="$WORK/tmp"      # the container's /tmp emptyDir
BUILD="$WORK/build"      # the build stage
mkdir -p "$APP" "$SHARED" "$SCRATCH" "$BUILD" "$WORK/bin"

# --- build stage ---------------------------------------------------------------------

say "building from a clean copy of the sources"
cp "$ROOT/package.json" "$ROOT/package-lock.json" "$ROOT/tsconfig.json" "$ROOT/tsconfig.build.json" "$BUILD/"
cp -R "$ROOT/src" "$BUILD/src"
ln -s "$ROOT/node_modules" "$BUILD/node_modules"
(cd "$BUILD" && npm run build --silent) >"$WORK/build.log" 2>&1 || {
  cat "$WORK/build.log" >&2
  fail "npm run build failed"
}
find "$BUILD/dist" -name '*.map' -delete
[ -f "$BUILD/dist/main.js" ] || fail "the build wrote no dist/main.js"

# --- runtime stage -------------------------------------------------------------------

say "installing production dependencies only"
cp -R "$BUILD/dist" "$APP/dist"
mkdir -p "$APP/scripts"
cp -R "$ROOT/scripts/probes" "$APP/scripts/probes"
cp "$ROOT/package.json" "$ROOT/package-lock.json" "$APP/"
(cd "$APP" && npm ci --omit=dev --ignore-scripts --no-audit --no-fund --prefer-offline) >"$WORK/npm.log" 2>&1 || {
  cat "$WORK/npm.log" >&2
  fail "npm ci --omit=dev failed"
}
[ ! -e "$APP/node_modules/typescript" ] || fail "a development dependency (typescript) was installed: --omit=dev did not apply"
# The image's node is /usr/local/bin/node, root-owned, 0755.
cp "$NODE_BIN" "$WORK/bin/node"
chmod 0755 "$WORK/bin/node"
chown -R 0:0 "$APP" "$WORK/bin"
chmod -R go-w "$APP"
chown "$RUN_AS:$RUN_AS" "$SHARED" "$SCRATCH"
chmod 0755 "$SHARED" "$SCRATCH"
setpriv "--reuid=$RUN_AS" "--regid=$RUN_AS" --clear-groups "$WORK/bin/node" -e 0 2>/dev/null ||
  fail "uid $RUN_AS cannot run $WORK/bin/node (is /tmp mounted noexec?)"

# The image's compile cache (opt-in with NODE_COMPILE_CACHE): made as uid 65532 (Node keys
# it by uid), then root-owned and read-only, as the Dockerfile does; the sidecar's modules
# must load from it as it is. The sidecar below starts as the image does by default, without it.
COMPILE_CACHE="$APP/.compile-cache"
install -d -o "$RUN_AS" -g "$RUN_AS" "$COMPILE_CACHE"
(cd "$APP" && setpriv "--reuid=$RUN_AS" "--regid=$RUN_AS" --clear-groups env -i "NODE_COMPILE_CACHE=$COMPILE_CACHE" \
  "$WORK/bin/node" "$ROOT/scripts/warm-compile-cache.cjs" dist) >"$WORK/warm.log" 2>&1 || {
  cat "$WORK/warm.log" >&2
  fail "scripts/warm-compile-cache.cjs failed"
}
chown -R 0:0 "$COMPILE_CACHE"
chmod -R a+rX,go-w "$COMPILE_CACHE"
CACHE_USE=$(cd "$APP" && setpriv "--reuid=$RUN_AS" "--regid=$RUN_AS" --clear-groups env -i "NODE_COMPILE_CACHE=$COMPILE_CACHE" \
  NODE_DEBUG_NATIVE=COMPILE_CACHE "$WORK/bin/node" -e 'require("./dist/sidecar")' 2>&1)
CACHE_HITS=$(grep -c 'was accepted' <<<"$CACHE_USE" || true)
CACHE_MISSES=$(grep -Ec 'was (rejected|not initialized, initializing)' <<<"$CACHE_USE" | tr -d ' ' || true)
# Only the -e program itself is new to the cache.
[ "$CACHE_HITS" -gt 100 ] && [ "$CACHE_MISSES" -le 2 ] ||
  fail "the read-only compile cache was not used as uid $RUN_AS: $CACHE_HITS modules from it, $CACHE_MISSES compiled afresh"
say "compile cache: $CACHE_HITS modules loaded from the read-only cache as uid $RUN_AS"

# --- peers ---------------------------------------------------------------------------

read -r RELAY_PORT MANAGEMENT_PORT PEERS_PORT < <("$NODE_BIN" -e '
  const net = require("node:net");
  const servers = [0, 1, 2].map(() => net.createServer().listen(0, "127.0.0.1"));
  Promise.all(servers.map((s) => new Promise((r) => s.once("listening", r)))).then(() => {
    console.log(servers.map((s) => s.address().port).join(" "));
    servers.forEach((s) => s.close());
  });')
[ -n "${PEERS_PORT:-}" ] || fail "could not pick free ports"

# The downstream records what it gets; /channel/* stands in for the smee server and
# client together: it accepts a health-check event and delivers it to the relay port.
"$NODE_BIN" "$ROOT/scripts/check-peers.mjs" "$PEERS_PORT" "$RELAY_PORT" "$WORK/received.jsonl" >"$WORK/peers.log" 2>&1 &
PEERS_PID=$!
for _ in $(seq 1 100); do
  grep -q 'peers listening' "$WORK/peers.log" 2>/dev/null && break
  kill -0 "$PEERS_PID" 2>/dev/null || fail "the downstream stand-in did not start"
  sleep 0.05
done

# --- start the sidecar ---------------------------------------------------------------

# A private mount namespace with / read-only and only the shared volume and TMPDIR
# writable: readOnlyRootFilesystem with two emptyDirs, as the manifests run it.
READ_ONLY_ROOT=no
if unshare --mount --propagation private -- sh -c \
  'mount --bind "$1" "$1" && mount -o remount,bind,ro / && [ -w "$1" ] && ! [ -w /etc ]' \
  sh "$SCRATCH" 2>/dev/null; then
  READ_ONLY_ROOT=yes
fi

SIDECAR_ENV=(
  "PATH=$WORK/bin:/usr/local/bin:/usr/bin:/bin"
  "HOME=/nonexistent"
  "TMPDIR=$SCRATCH"
  "NODE_ENV=production"
  "NODE_OPTIONS=$NODE_OPTIONS_IMAGE"
  "LISTEN_HOST=127.0.0.1"
  "RELAY_PORT=$RELAY_PORT"
  "MANAGEMENT_PORT=$MANAGEMENT_PORT"
  "SHARED_VOLUME_PATH=$SHARED"
  "DOWNSTREAM_SERVICE_URL=http://127.0.0.1:$PEERS_PORT/webhook"
  "SMEE_CHANNEL_URL=http://127.0.0.1:$PEERS_PORT/channel/runtime-check"
  "HEALTH_CHECK_TIMEOUT_SECONDS=10"
)
AS_CONTAINER_USER=(setpriv "--reuid=$RUN_AS" "--regid=$RUN_AS" --clear-groups --no-new-privs
  --inh-caps=-all --bounding-set=-all --)

if [ "$READ_ONLY_ROOT" = yes ]; then
  say "starting the sidecar as uid $RUN_AS on a read-only root filesystem"
else
  say "note: no private mount namespace here (needs CAP_SYS_ADMIN); the root filesystem stays writable to root, but everything outside the shared volume and TMPDIR is root-owned and the sidecar runs as uid $RUN_AS"
  say "starting the sidecar as uid $RUN_AS"
fi
SIDECAR_START=$(date +%s%N)
(
  cd "$APP"
  if [ "$READ_ONLY_ROOT" = yes ]; then
    exec unshare --mount --propagation private -- sh -c \
      'mount --bind "$1" "$1" && mount --bind "$2" "$2" && mount -o remount,bind,ro / && shift 2 && exec "$@"' \
      sh "$SHARED" "$SCRATCH" "${AS_CONTAINER_USER[@]}" env -i "${SIDECAR_ENV[@]}" node dist/main.js
  else
    exec "${AS_CONTAINER_USER[@]}" env -i "${SIDECAR_ENV[@]}" node dist/main.js
  fi
) >"$WORK/sidecar.log" 2>&1 &
SIDECAR_PID=$!

MANAGEMENT="http://127.0.0.1:$MANAGEMENT_PORT"
RELAY="http://127.0.0.1:$RELAY_PORT"

# wait_for URL SECONDS: until URL answers 200, or fail when the sidecar exits or time is up.
wait_for() {
  local url=$1 seconds=$2 code
  for _ in $(seq 1 $((seconds * 10))); do
    if ! kill -0 "$SIDECAR_PID" 2>/dev/null; then
      wait "$SIDECAR_PID" && code=0 || code=$?
      SIDECAR_PID=''
      fail "the sidecar exited with status $code before $url answered 200 (a missing runtime dependency or file, or a write outside /shared and /tmp, shows in its log)"
    fi
    code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$url" || true)
    [ "$code" = 200 ] && return 0
    sleep 0.1
  done
  fail "$url did not answer 200 within ${seconds}s (last answer: ${code:-none}): $(curl -s --max-time 2 "$url" || true)"
}

wait_for "$MANAGEMENT/healthz" 30
say "/healthz answered 200, $((($(date +%s%N) - SIDECAR_START) / 1000000)) ms after start"
wait_for "$MANAGEMENT/readyz" 30
say "/readyz answered 200: the first health check went round through the channel"

# --- relay one webhook ---------------------------------------------------------------

relay_signed_webhook "$RELAY" "$WORK/received.jsonl" runtime-check

# --- probe scripts and metrics -------------------------------------------------------

for script in check-file-age.sh check-smee-health.sh check-sidecar-health.sh; do
  [ -f "$SHARED/$script" ] || fail "$script was not written into the shared volume"
  mode=$(stat -c %a "$SHARED/$script")
  [ "$mode" = 555 ] || fail "$script has mode $mode, expected 555"
done
for script in check-smee-health.sh check-sidecar-health.sh; do
  out=$("${AS_CONTAINER_USER[@]}" env -i PATH=/usr/bin:/bin /bin/sh "$SHARED/$script" 2>&1) ||
    fail "the liveness probe $script failed as uid $RUN_AS: $out"
  say "probe $script: $out"
done
METRICS=$(curl -sS --max-time 5 "$MANAGEMENT/metrics") || fail "/metrics did not answer"
grep -Eq '^smee_events_relayed_total(\{[^}]*\})? 1$' <<<"$METRICS" ||
  fail "smee_events_relayed_total is not 1: $(grep '^smee_events_relayed_total' <<<"$METRICS" || echo absent)"
grep -Eq '^health_check(\{[^}]*\})? 1$' <<<"$METRICS" ||
  fail "health_check is not 1: $(grep '^health_check' <<<"$METRICS" || echo absent)"

# --- graceful stop -------------------------------------------------------------------

kill -TERM "$SIDECAR_PID"
for _ in $(seq 1 250); do kill -0 "$SIDECAR_PID" 2>/dev/null || break; sleep 0.1; done
kill -0 "$SIDECAR_PID" 2>/dev/null && fail "the sidecar did not exit within 25 s of SIGTERM"
wait "$SIDECAR_PID" && code=0 || code=$?
SIDECAR_PID=''
[ "$code" = 0 ] || fail "the sidecar exited with status $code after SIGTERM, expected 0"
grep -q '"level":"error"' "$WORK/sidecar.log" && fail "the sidecar logged an error"

say "passed in $(elapsed) (read-only root: $READ_ONLY_ROOT; node $("$NODE_BIN" --version); NODE_OPTIONS=$NODE_OPTIONS_IMAGE)"
