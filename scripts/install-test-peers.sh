#!/usr/bin/env bash
# Installs the Debian packages whose programs the test suite runs as real peers:
# shells the probe scripts must work under (dash, busybox sh), the servers and
# load generator of later integration tests (haproxy, prometheus, nginx, wrk; prometheus
# also brings promtool, which checks the alert rules and the dashboard's queries;
# redis-server for coordination between replicas), the headless browser the status page
# is loaded in (chromium), and
# the container tools that build and run the real image in scripts/image-check.sh
# (buildah, podman, runc, mmdebstrap; curl and ip for its checks).
# Idempotent and quick when everything is there: apt is only touched when a
# command is missing. Runs as root in CI; elsewhere it goes through sudo.
set -euo pipefail

# command -> Debian package
declare -A PACKAGES=(
  [dash]=dash
  [busybox]=busybox
  [haproxy]=haproxy
  [prometheus]=prometheus
  [nginx]=nginx
  [wrk]=wrk
  [chromium]=chromium
  [promtool]=prometheus
  [redis-server]=redis-server
  [buildah]=buildah
  [podman]=podman
  [runc]=runc
  [mmdebstrap]=mmdebstrap
  [curl]=curl
  [ip]=iproute2
  [nsenter]=util-linux
)

# Servers land in sbin, which a non-root PATH may lack.
export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"

missing=()
for cmd in "${!PACKAGES[@]}"; do
  command -v "$cmd" >/dev/null 2>&1 || missing+=("${PACKAGES[$cmd]}")
done
if [ "${#missing[@]}" -eq 0 ]; then
  echo "install-test-peers: all present"
  exit 0
fi

SUDO=()
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null 2>&1 || { echo "install-test-peers: need root (or sudo) to install: ${missing[*]}" >&2; exit 1; }
  SUDO=(sudo)
fi

# Keep package scripts from starting nginx/haproxy/prometheus/podman as services: the
# tests start their own instances on their own ports. Docker images usually ship
# such a policy already; add one only for the duration of the install.
POLICY=/usr/sbin/policy-rc.d
if [ ! -e "$POLICY" ]; then
  printf '#!/bin/sh\nexit 101\n' | "${SUDO[@]}" tee "$POLICY" >/dev/null
  "${SUDO[@]}" chmod 0755 "$POLICY"
  trap '"${SUDO[@]}" rm -f "$POLICY"' EXIT
fi

echo "install-test-peers: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" apt-get update -qq
"${SUDO[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"

for cmd in "${!PACKAGES[@]}"; do
  command -v "$cmd" >/dev/null 2>&1 || { echo "install-test-peers: $cmd still missing after install" >&2; exit 1; }
done
