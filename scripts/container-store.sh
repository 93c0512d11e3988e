# Sourced by build-image.sh and image-check.sh: buildah and podman on a private store.
# Expects STORE (an absolute folder). Everything goes under it: images and layers on the
# vfs driver (no overlay needed), run state, podman's temporary files and its event log.
# Containers run under runc (crun refuses some hosts' cgroup layout) with cgroupfs.
# shellcheck shell=bash

container_store_flags=(--root "$STORE/storage" --runroot "$STORE/run" --storage-driver vfs)

buildah_() {
  buildah "${container_store_flags[@]}" "$@"
}

podman_() {
  podman "${container_store_flags[@]}" --runtime runc --cgroup-manager cgroupfs \
    --events-backend file --tmpdir "$STORE/podman-tmp" "$@"
}
