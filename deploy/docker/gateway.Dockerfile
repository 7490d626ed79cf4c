# the gateway: one origin for the dashboard and the API.
# Build from the repository root: docker build -f deploy/docker/gateway.Dockerfile .

# The dashboard is TypeScript built with Node.js; only its built files go into the image.
FROM node:22-slim AS dashboard
WORKDIR /src/services/insights-query/dashboard
COPY services/insights-query/dashboard/package.json services/insights-query/dashboard/.npmrc ./
RUN npm install --no-audit --no-fund --package-lock=false
COPY services/insights-query/dashboard/ ./
# vite writes ../src/insights_query/dashboard_assets (outDir in vite.config.ts)
RUN npm run build

FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 UV_COMPILE_BYTECODE=1 PATH="/app/.venv/bin:$PATH"
WORKDIR /app
COPY . .
# The workspace is installed editable, so the package reads its assets from the source tree.
COPY --from=dashboard /src/services/insights-query/src/insights_query/dashboard_assets \
     services/insights-query/src/insights_query/dashboard_assets
RUN sh deploy/docker/install.sh
USER insights
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=5 \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/readyz', timeout=2)"]
CMD ["insights", "serve", "gateway", "--host", "0.0.0.0", "--port", "8000"]
