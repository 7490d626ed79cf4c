# import-svc: CSV uploads, the import report and history; publishes users to Kafka.
# Build from the repository root: docker build -f deploy/docker/import.Dockerfile .
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 UV_COMPILE_BYTECODE=1 PATH="/app/.venv/bin:$PATH"
WORKDIR /app
COPY . .
RUN sh deploy/docker/install.sh
USER insights
EXPOSE 8001
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=5 \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8001/readyz', timeout=2)"]
CMD ["insights", "serve", "import", "--host", "0.0.0.0", "--port", "8001"]
