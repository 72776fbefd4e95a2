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
USER node
ENV HOST=0.0.0.0 PORT=3000
EXPOSE 3000
CMD ["npm", "run", "start:api"]
