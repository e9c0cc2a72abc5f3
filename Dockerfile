# Mirrors the README's non-Docker path: install the package, run `gateway serve`.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
WORKDIR /app

COPY pyproject.toml README.md ./
COPY gateway ./gateway
RUN pip install --no-cache-dir . \
    && useradd --system --uid 10001 switchyard

USER switchyard
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s CMD python -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2)" || exit 1
# In a container the gateway must listen beyond loopback, so set GATEWAY_MASTER_KEY.
CMD ["gateway", "serve", "--host", "0.0.0.0", "--port", "8000"]
