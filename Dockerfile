# Mirrors the README's non-Docker path: install the package, run `gateway serve`.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
WORKDIR /app

COPY pyproject.toml README.md ./
COPY gateway ./gateway
RUN pip install --no-cache-dir . \
    && groupadd --system --gid 10001 switchyard \
    && useradd --system --uid 10001 --gid 10001 --no-create-home switchyard \
    && install -d -o switchyard -g switchyard /var/lib/switchyard

# The working directory is where relative metering paths land (the SQLite fallback
# `switchyard.db`, the usage spool `switchyard-spool/`): it must be writable by the app user.
# Compose and Kubernetes mount a volume here.
WORKDIR /var/lib/switchyard
USER 10001:10001
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s CMD python -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2)" || exit 1
# In a container the gateway must listen beyond loopback, so set GATEWAY_MASTER_KEY.
CMD ["gateway", "serve", "--host", "0.0.0.0", "--port", "8000"]
