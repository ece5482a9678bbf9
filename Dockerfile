# syntax=docker/dockerfile:1
# The worker alone, for a WebUI that runs elsewhere (set A1111_BASE_URL). The image that also carries
# A1111 and a checkpoint builds on the `worker` stage below.
FROM node:20.20.2-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci
COPY tsconfig.json tsconfig.build.json ./
COPY machines ./machines
COPY src ./src
RUN npm run build && npm prune --omit=dev

FROM node:20.20.2-bookworm-slim AS worker
ENV NODE_ENV=production
WORKDIR /app
COPY --from=build /app/package.json ./
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY test_input.json ./
USER node
ENTRYPOINT ["node", "/app/dist/src/main.js"]
