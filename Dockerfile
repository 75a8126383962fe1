# The controller image: built with the project's own toolchain, run as non-root on a current LTS Node.
# Build it for both architectures with vmbuild itself (test/integration/controller-image.test.ts does, on the test
# environment) or with `podman build --platform linux/amd64,linux/arm64 --manifest ...`.
#
# NODE_IMAGE: the Node base, for both stages. The test environment passes one it assembles from Debian packages,
# since no public registry is reachable there; that one already holds git and openssh-client.
ARG NODE_IMAGE=docker.io/library/node:26-trixie-slim

# The bundle is the same JavaScript for every architecture: built once, on the build host's own platform, and no
# emulated npm for the foreign ones.
FROM --platform=$BUILDPLATFORM ${NODE_IMAGE} AS build
# The npm registry, or a mirror of it, to install from (npm ci takes the lockfile's versions and integrity from it).
ARG NPM_CONFIG_REGISTRY=https://registry.npmjs.org/
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY hack/build.ts ./hack/
COPY src ./src
RUN npm run build && npm prune --omit=dev

FROM ${NODE_IMAGE}
# git fetches build sources, over ssh with openssh-client (installed unless the base has them). ssh refuses to run
# for a uid without a passwd entry ("No user exists for uid"), hence the entry for 65532 (the USER below).
RUN if ! command -v git >/dev/null || ! command -v ssh >/dev/null; then \
      apt-get update \
      && apt-get install -y --no-install-recommends git openssh-client ca-certificates \
      && rm -rf /var/lib/apt/lists/*; \
    fi \
 && echo 'vmbuild:x:65532:65532:vmbuild:/nonexistent:/usr/sbin/nologin' >> /etc/passwd \
 && echo 'vmbuild:x:65532:' >> /etc/group
WORKDIR /app
COPY --from=build /src/package.json ./
COPY --from=build /src/node_modules ./node_modules
COPY --from=build /src/dist ./dist
ENV NODE_ENV=production \
    VMBUILD_WORK_DIR=/tmp/vmbuild
# glibc malloc: blocks of 64 KiB and more (Node's socket and file read buffers) get their own mappings, returned
# to the system when freed, and the heap's free top is trimmed early. Otherwise they churn through the main heap
# and leave it fragmented: ~14 MiB more resident at bench (b)'s 150 runs (docs/benchmarks.md, "(b) peak RSS").
# test/support/controller.ts runs the bench's and tests' controller with this same setting.
ENV GLIBC_TUNABLES=glibc.malloc.mmap_threshold=65536:glibc.malloc.trim_threshold=131072
USER 65532:65532
EXPOSE 8080
# Node flags, each measured by bench (b) (docs/benchmarks.md, "(b) peak RSS"):
# - 2 MiB semi-spaces: V8's young generation otherwise grows to 2 x 16 MiB and stays committed (~28 MiB idle).
# - Old generation collected at 1.25 x its live size: the controller's live heap is small (~30 MB) and steady, and
#   V8's default growth let garbage pile up between full GCs (a sawtooth of ~180 to ~330 MiB at 500 runs); the
#   cost is ~0.7 s more marking per 150 runs.
# - WebAssembly kept on its baseline compiler: undici parses HTTP with llhttp compiled to WebAssembly, and
#   optimizing its parser function took ~35 MiB of compiler memory for a moment, the controller's peak.
# test/support/controller.ts runs the bench's and tests' controller with these same flags.
ENTRYPOINT ["node", "--max-semi-space-size=2", "--heap-growing-percent=25", "--no-wasm-tier-up", "--no-wasm-dynamic-tiering", "dist/main.js"]
