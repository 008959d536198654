# The retrain app image: every service of docker-compose.yml (worker, scheduler, dashboard) runs it
# with another `retrain` command. Build: `docker build -t retrain .`; run: `docker run --rm retrain --help`.
FROM node:20-bookworm-slim

# python3: the shipped recipes train with it when the driver is `local` (standard library only).
# coreutils (sha256sum, timeout, stat), util-linux (setsid, flock) and tar: the detached recipe runner.
# ca-certificates: HTTPS to Vast.ai, S3/R2 and Telegram. tini: PID 1, so SIGTERM reaches retrain
# (a worker hands its trainings back on it) and the trainings the local driver detaches are reaped.
RUN apt-get update \
  && apt-get install -y --no-install-recommends python3 coreutils util-linux tar ca-certificates tini \
  && rm -rf /var/lib/apt/lists/*

WORKDIR /app
# Dependencies first, so a source change does not re-install them. tsx is a runtime dependency: the
# CLI runs the TypeScript sources through it (bin/retrain.mjs), so there is no build step.
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force

COPY tsconfig.json ./
COPY bin ./bin
COPY src ./src
COPY queues ./queues
COPY processors ./processors
COPY scheduler ./scheduler
COPY dashboards ./dashboards
COPY recipes ./recipes

# Non-root. All state (RETRAIN_HOME: local store, logs, work dirs, the deployment's SSH keys) lives
# in /data, a volume shared by the services of one deployment.
RUN useradd --system --uid 10001 --create-home --home-dir /home/retrain retrain \
  && mkdir -p /data \
  && chown retrain:retrain /data
USER retrain
ENV NODE_ENV=production \
  RETRAIN_HOME=/data
VOLUME ["/data"]

ENTRYPOINT ["/usr/bin/tini", "--", "node", "/app/bin/retrain.mjs"]
CMD ["--help"]
