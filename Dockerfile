# syntax=docker/dockerfile:1
# Node 20 on Debian bookworm (glibc 2.36): the uWebSockets.js build in use ships a native binary
# for Node ABI 115 on glibc; alpine/musl would not load it, and the proxy refuses the JS fallback.
FROM node:20.20.2-bookworm-slim AS deps
WORKDIR /app
RUN apt-get update && apt-get install -y --no-install-recommends python3 make g++ && rm -rf /var/lib/apt/lists/*
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund

FROM node:20.20.2-bookworm-slim AS runtime
ENV NODE_ENV=production
WORKDIR /app
COPY --from=deps /app/node_modules ./node_modules
COPY package.json tsconfig.json ./
COPY bin ./bin
COPY src ./src
COPY policies ./policies
COPY config ./config
RUN mkdir -p /app/.data && chown -R node:node /app/.data
USER node
EXPOSE 8080 8443
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
  CMD node -e "fetch('http://127.0.0.1:'+(process.env.PORT||8080)+'/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"
ENTRYPOINT ["node", "bin/realtime-proxy.mjs"]
CMD ["--config", "config/example.yaml"]
