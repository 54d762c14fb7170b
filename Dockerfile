# The image that runs the bus: `docker run -e ESB_BROKER_URL=amqp://... -e ESB_API_KEYS=... -p 8080:8080 esb`
# (without ESB_BROKER_URL it runs on the embedded transport in the /var/lib/esb volume).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
    ESB_HTTP_HOST=0.0.0.0 ESB_HTTP_PORT=8080 ESB_DATA_DIR=/var/lib/esb

WORKDIR /app
COPY pyproject.toml README.md routes.yaml ./
COPY esb ./esb
COPY adapters ./adapters
COPY schemas ./schemas
COPY mappings ./mappings
# Editable: the schemas and mappings are read from /app, where integrators mount their own.
RUN pip install --no-cache-dir -e '.[postgres]'

# /data: the shared directories of docker-compose.yml (the WMS's export dir, the reconciliation dir)
RUN useradd --system --home /var/lib/esb esb && mkdir -p /var/lib/esb /data/wms/out /data/reconciliation \
    && chown -R esb /var/lib/esb /data
USER esb
VOLUME /var/lib/esb
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=3s CMD python -c "import urllib.request,os; urllib.request.urlopen(f'http://127.0.0.1:{os.environ[\"ESB_HTTP_PORT\"]}/healthz')"
ENTRYPOINT ["esb"]
CMD ["run"]
