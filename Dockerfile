# One image for the three apps; APP picks which one runs:
#   docker build --build-arg APP=ingest -t reseq-ingest .
# Written to the Dockerfile reference; no Docker engine runs where this repo is developed, so
# it is kept plain. Node 20 LTS, non-root user, production dependencies only.

FROM node:20-bookworm-slim AS build
WORKDIR /app
RUN npm install -g pnpm@10
COPY package.json pnpm-lock.yaml pnpm-workspace.yaml tsconfig.base.json tsconfig.json ./
COPY apps/ingest/package.json apps/ingest/
COPY apps/transform-worker/package.json apps/transform-worker/
COPY apps/resequencer-sender/package.json apps/resequencer-sender/
COPY apps/cli/package.json apps/cli/
COPY apps/cli/bin apps/cli/bin
COPY packages/config/package.json packages/config/
COPY packages/delivery/package.json packages/delivery/
COPY packages/resequencer/package.json packages/resequencer/
COPY packages/runtime/package.json packages/runtime/
COPY packages/store/package.json packages/store/
COPY packages/webhook-verify/package.json packages/webhook-verify/
RUN pnpm install --frozen-lockfile
COPY apps apps
COPY packages packages
COPY demo demo
RUN pnpm build && pnpm install --frozen-lockfile --prod

FROM node:20-bookworm-slim
ARG APP=ingest
ENV NODE_ENV=production APP=${APP} METRICS_PORT=9090
WORKDIR /app
COPY --from=build --chown=node:node /app /app
USER node
EXPOSE 8080 9090
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
  CMD node -e "fetch('http://127.0.0.1:'+process.env.METRICS_PORT+'/readyz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"
CMD ["sh", "-c", "exec node apps/${APP}/dist/main.js"]
