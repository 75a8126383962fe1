# The controller image: built with the project's own toolchain, run as non-root on a current LTS Node.
# (This project's machines have no Docker engine; the image is built by CI elsewhere or by users.)
FROM node:26-trixie-slim AS build
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY hack/build.ts ./hack/
COPY src ./src
RUN npm run build && npm prune --omit=dev

FROM node:26-trixie-slim
# git fetches build sources; the controller never runs a shell.
RUN apt-get update \
 && apt-get install -y --no-install-recommends git ca-certificates \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY --from=build /src/package.json ./
COPY --from=build /src/node_modules ./node_modules
COPY --from=build /src/dist ./dist
ENV NODE_ENV=production \
    VMBUILD_WORK_DIR=/tmp/vmbuild
USER 65532:65532
EXPOSE 8080
# V8's young generation grows to 2 x 16 MiB by default and stays committed: 2 MiB semi-spaces cut the controller's
# RSS by ~28 MiB idle and ~25 MiB at bench (b)'s peak (docs/benchmarks.md), for more (cheap) minor GCs.
# test/support/controller.ts runs the bench's and tests' controller with these same flags.
ENTRYPOINT ["node", "--max-semi-space-size=2", "dist/main.js"]
