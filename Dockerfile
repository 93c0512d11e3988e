# syntax=docker/dockerfile:1
#
# pod-sidecar image. Three stages on the same Node 24 base:
#   deps    - production node_modules only (cached until package*.json change)
#   build   - full install and `tsc`, for dist/
#   runtime - dist/, scripts/probes/, package.json and the production node_modules
#
# Built and run for real by scripts/image-check.sh (buildah and podman, no Docker
# engine; CI runs it). scripts/runtime-check.sh reproduces the runtime stage without
# any container tooling, as a quick check inside `npm test`. Keep the two in step.

ARG NODE_IMAGE=node:24-bookworm-slim
# Optional: a CA bundle for npm (a registry behind a TLS-inspecting proxy). Give the
# path of a file mounted for the build only (buildah bud --volume, docker build
# --secret/--mount); the file itself never enters a layer, and the runtime stage
# does not declare the argument.
ARG NPM_CONFIG_CAFILE=

FROM ${NODE_IMAGE} AS deps
ARG NPM_CONFIG_CAFILE
WORKDIR /app
COPY package.json package-lock.json ./
# --ignore-scripts: no production dependency has an install script, and none may
# run at image build time unnoticed (the runtime check installs the same way).
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund \
 && npm cache clean --force

FROM ${NODE_IMAGE} AS build
ARG NPM_CONFIG_CAFILE
WORKDIR /app
COPY package.json package-lock.json ./
# --ignore-scripts: the only install scripts are dev tools' (the `node` package, which
# would download a second Node 24 binary, and esbuild); `tsc` needs neither.
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build \
 && find dist -name '*.map' -delete

FROM ${NODE_IMAGE} AS runtime
ARG VERSION=0.1.0
ARG SOURCE=https://github.com/example/pod-sidecar
LABEL org.opencontainers.image.title="pod-sidecar" \
      org.opencontainers.image.description="One Kubernetes sidecar for webhook relay with end-to-end smee health checks, header dispatch, store-and-forward, drain control, connection activity and metrics." \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}"

# uid/gid 65532 ("nonroot", as in distroless images) so that runAsNonRoot can be
# verified from the numeric USER. npm, npx, corepack and yarn are removed: nothing
# runs them here and they are most of the image's CVE surface beside Node itself.
# /bin/sh, stat, date, sed and head stay: the sidecar's own liveness probe runs
# check-sidecar-health.sh inside this container.
RUN groupadd --system --gid 65532 nonroot \
 && useradd --system --uid 65532 --gid 65532 --home-dir /nonexistent --no-create-home \
      --shell /usr/sbin/nologin nonroot \
 && rm -rf /usr/local/lib/node_modules /usr/local/bin/npm /usr/local/bin/npx \
      /usr/local/bin/corepack /usr/local/bin/yarn /usr/local/bin/yarnpkg /opt/yarn-* \
 && mkdir -p /shared \
 && chown 65532:65532 /shared

WORKDIR /app
# Everything under /app stays root-owned and read-only to the process: with
# readOnlyRootFilesystem it writes only to the shared volume (/shared) and /tmp.
COPY --from=deps /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
# Read at run time (relative to dist/) and written into the shared volume at start-up.
COPY scripts/probes ./scripts/probes
COPY package.json ./

# NODE_ENV: production code paths in dependencies (fastify, nest).
# --max-old-space-size-percentage: the old-space limit follows the container's memory
#   limit (cgroup), so the heap gives way before the kernel's OOM killer fires; the other
#   half is left for relayed bodies (Buffers live outside the V8 heap), code and stacks.
# --max-semi-space-size: left alone, Node 24's young generation grows under allocation
#   churn to 128 MB of new space (64 MB semi-spaces; measured on 24.21, even with a
#   128 MB old space) - half a 256 Mi container before the old space holds anything.
#   A relay's per-request garbage is small and short-lived: 2 MB semi-spaces cost more,
#   cheap, scavenges and keep RSS flat under bursts (npm run bench, 50 connections:
#   peak RSS 144 MiB at 8 MB, 133 MiB at 2 MB, 134 MiB at 1 MB, same requests/s).
# The image also carries V8's code cache for every module (/app/.compile-cache, made below
# at build time), off by default: with NODE_COMPILE_CACHE=/app/.compile-cache a starting
# pod compiles almost no JavaScript (cold start about a quarter shorter) but idles ~8 MiB
# higher (npm run bench measures both). Memory is paid by every pod all the time, start-up
# once; set it where starts matter more (scale from zero, frequent rollouts). Node keys the
# cache by uid, so it is made as the uid that runs; read-only at run time, which Node
# accepts silently (it only skips writing it back).
ENV NODE_ENV=production \
    NODE_OPTIONS="--max-old-space-size-percentage=50 --max-semi-space-size=2"

COPY scripts/warm-compile-cache.cjs /tmp/
RUN install -d -o 65532 -g 65532 /app/.compile-cache
USER 65532:65532
RUN NODE_COMPILE_CACHE=/app/.compile-cache node /tmp/warm-compile-cache.cjs dist
USER root
RUN chown -R 0:0 /app/.compile-cache \
 && chmod -R a+rX,go-w /app/.compile-cache \
 && rm /tmp/warm-compile-cache.cjs
# Back to the unprivileged user for good: the image's default user is what runs
# (runAsNonRoot checks this numeric USER; scripts/image-check.sh checks `id`).
USER 65532:65532
EXPOSE 8080 9100
# Node is PID 1 on purpose: it handles SIGTERM/SIGINT itself (graceful drain) and
# starts no child processes, so no init is needed to reap them.
ENTRYPOINT ["node", "dist/main.js"]
