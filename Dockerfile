# The meterflow API and worker. The worker bundles workflow code at start, so sources ship as-is
# and run through tsx; there is no separate build step to drift from what the tests ran.
FROM node:20-bookworm-slim
WORKDIR /app
ENV NODE_ENV=production
COPY package.json package-lock.json ./
RUN npm ci --omit=dev && npm cache clean --force
COPY tsconfig.json ./
COPY src ./src
COPY migrations ./migrations
# The provider simulator's DATA_DIR in docker-compose.yml: a named volume takes the owner of the
# image's directory, so the unprivileged user can write it.
RUN mkdir /data && chown node:node /data
USER node
ENV HOST=0.0.0.0 PORT=3000
EXPOSE 3000
# node itself, not `npm run`: npm does not pass SIGTERM on, so the API would be killed instead of
# draining (test/integration/compose.test.ts stops every service and expects a clean exit).
CMD ["node", "--max-semi-space-size=64", "--import", "tsx", "src/main/api.ts"]
