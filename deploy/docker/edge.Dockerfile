# the edge: nginx (the official image) in front of import, ingest and query, serving the built
# dashboard. Build from the repository root: docker build -f deploy/docker/edge.Dockerfile .
# Its config is deploy/nginx/insights.conf.template, which the image fills in from the
# environment (INSIGHTS_*_UPSTREAM, INSIGHTS_EDGE_LISTEN...) when it starts.

# The dashboard is TypeScript built with Node.js; only its built files go into the image.
FROM node:22-slim AS dashboard
WORKDIR /src/services/insights-query/dashboard
COPY services/insights-query/dashboard/package.json services/insights-query/dashboard/.npmrc ./
RUN npm install --no-audit --no-fund --package-lock=false
COPY services/insights-query/dashboard/ ./
# vite writes ../src/insights_query/dashboard_assets (outDir in vite.config.ts)
RUN npm run build

FROM nginx:1.28.0-alpine
RUN rm /etc/nginx/conf.d/default.conf
COPY deploy/nginx/insights.conf.template /etc/nginx/templates/insights.conf.template
COPY --from=dashboard /src/services/insights-query/src/insights_query/dashboard_assets \
     /usr/share/insights/dashboard
ENV INSIGHTS_EDGE_LISTEN=8000 \
    INSIGHTS_EDGE_TLS="" \
    INSIGHTS_EDGE_ACCESS_LOG=/dev/stdout \
    INSIGHTS_DASHBOARD_ROOT=/usr/share/insights/dashboard \
    INSIGHTS_IMPORT_UPSTREAM=import:8001 \
    INSIGHTS_INGEST_UPSTREAM=ingest:8002 \
    INSIGHTS_QUERY_UPSTREAM=query:8003
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=5 \
  CMD ["wget", "-q", "-O", "/dev/null", "http://127.0.0.1:8000/healthz"]
