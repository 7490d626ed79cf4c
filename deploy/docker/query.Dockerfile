# insights-query's API: search, statistics, messages and templates from OpenSearch.
# Build from the repository root: docker build -f deploy/docker/query.Dockerfile .
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 UV_COMPILE_BYTECODE=1 PATH="/app/.venv/bin:$PATH"
WORKDIR /app
COPY . .
RUN sh deploy/docker/install.sh
USER insights
EXPOSE 8003
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=5 \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8003/readyz', timeout=2)"]
CMD ["insights", "serve", "query", "--host", "0.0.0.0", "--port", "8003"]
