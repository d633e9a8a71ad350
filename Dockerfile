# syntax=docker/dockerfile:1
# Node 20 on Debian bookworm (glibc 2.36): the uWebSockets.js build in use ships a native binary
# for Node ABI 115 on glibc; alpine/musl would not load it, and the proxy refuses the JS fallback.

# ---- build: compile TypeScript to dist/, then keep production dependencies only ----
FROM node:20.20.2-bookworm-slim AS build
WORKDIR /app
# better-sqlite3 compiles its native addon when no prebuilt binary can be downloaded.
RUN apt-get update && apt-get install -y --no-install-recommends python3 make g++ && rm -rf /var/lib/apt/lists/*
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
# Then: production dependencies only; of uWebSockets.js's binaries for every platform and Node ABI
# (~110 MB) only this one; no sources or intermediates of the native addons.
RUN npm run build \
 && npm prune --omit=dev --no-audit --no-fund \
 && keep="uws_$(node -p 'process.platform + "_" + process.arch + "_" + process.versions.modules').node" \
 && find node_modules/uWebSockets.js -name 'uws_*.node' ! -path "*/binaries/$keep" -delete \
 && test -f "node_modules/uWebSockets.js/binaries/$keep" \
 && rm -rf node_modules/better-sqlite3/deps node_modules/better-sqlite3/src node_modules/better-sqlite3/build/Release/obj* \
 && test ! -e node_modules/tsx && test ! -e node_modules/typescript

# ---- runtime: compiled JS, production dependencies, one data directory ----
FROM node:20.20.2-bookworm-slim AS runtime
ENV NODE_ENV=production
# The config both `run` and `check-config` read without --config (until 2026-12-07 only CMD named it, and
# `docker run IMAGE check-config` checked the built-in defaults and said ok). -e REALTIME_PROXY_CONFIG=… picks another.
ENV REALTIME_PROXY_CONFIG=/app/config/production.yaml
WORKDIR /app
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY package.json ./
COPY bin ./bin
COPY policies ./policies
COPY config/production.yaml config/example.yaml config/config.schema.json ./config/
# All state (the SQLite ledger) lives in /data; a volume mounted there must be writable by uid 1000.
RUN mkdir -p /data && chown node:node /data
VOLUME ["/data"]
USER node
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
  CMD node -e "fetch('http://127.0.0.1:'+(process.env.PORT||8080)+'/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"
# V8 flags: src/server/node-flags.ts says why (young and old generation sizing, for the latency tail).
ENTRYPOINT ["node", "--max-semi-space-size=32", "--initial-old-space-size=128", "--v8-pool-size=1", "dist/cli.js"]
CMD ["run"]
