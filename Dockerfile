# Errand broker image (README "Deploying"). Build: docker build -t errand .
# Run:  docker run -p 127.0.0.1:8787:8787 -v errand-data:/data errand
# Behind a TLS proxy, set ERRAND_ISSUER to the public https URL (and ERRAND_TRUST_PROXY).

# 1. Build: every dependency, then the compiled JavaScript in dist/.
FROM node:20-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
# The npm workspaces (README "Layout"): their manifests are part of the install.
COPY packages/protocol/package.json packages/protocol/
COPY packages/guard/package.json packages/guard/
COPY packages/agent/package.json packages/agent/
# Scripts are skipped here: `prepare` would build before the sources are copied.
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY . .
RUN npm run build

# 2. Production dependencies only (the lock file pins them; no build tools, no tsx).
FROM node:20-slim AS deps
WORKDIR /app
COPY package.json package-lock.json ./
COPY packages/protocol/package.json packages/protocol/
COPY packages/guard/package.json packages/guard/
COPY packages/agent/package.json packages/agent/
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund

# 3. Runtime: node, the production dependencies and dist/, run as the unprivileged `node` user.
FROM node:20-slim
ENV NODE_ENV=production \
    ERRAND_HOST=0.0.0.0 \
    ERRAND_PORT=8787 \
    ERRAND_ISSUER=http://127.0.0.1:8787 \
    ERRAND_DATA_DIR=/data
WORKDIR /app
COPY --from=deps /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
# The broker imports @errand/protocol and @errand/guard: node_modules/@errand/* link to these builds.
COPY --from=build /app/packages/protocol/package.json packages/protocol/
COPY --from=build /app/packages/protocol/dist packages/protocol/dist
COPY --from=build /app/packages/guard/package.json packages/guard/
COPY --from=build /app/packages/guard/dist packages/guard/dist
COPY package.json ./
# The database, the master key and the signing keys live in /data: keep it on a volume and back it up.
RUN mkdir -p /data && chown node:node /data
USER node
VOLUME ["/data"]
EXPOSE 8787
# Ready = the broker can sign and commit (README "Health"). Node's fetch: no curl in the image.
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:'+(process.env.ERRAND_PORT||8787)+'/readyz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
# The broker drains on SIGTERM within ERRAND_SHUTDOWN_TIMEOUT; give the runtime's stop timeout more than that.
STOPSIGNAL SIGTERM
# Exec form: node is PID 1 and receives the stop signal itself (no shell in between).
CMD ["node", "dist/broker/main.js"]
