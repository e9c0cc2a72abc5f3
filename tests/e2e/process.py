"""A real `gateway serve` in its own process, for the tests that signal or kill it."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.e2e.conftest import ENV_NAMES, Upstreams


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def start_gateway(tmp_path: Path, upstreams: Upstreams, db: str, yaml: str,
                  name: str = "gateway", workers: int = 1, log_level: str = "warning",
                  ) -> tuple[subprocess.Popen[bytes], str]:
    """The process and its URL, once /healthz answers; its stderr in `<name>.log`. `workers`
    is always passed, so the default's dependence on REDIS_URL never changes a test."""
    port = free_port()
    config = tmp_path / f"{name}.yaml"
    config.write_text(yaml)
    env = {**os.environ, "DATABASE_URL": db}
    for provider, prefix in ENV_NAMES.items():
        env[f"{prefix}_API_KEY"] = upstreams[provider].key
        env[f"{prefix}_BASE_URL"] = upstreams[provider].base_url
    log = tmp_path / f"{name}.log"
    proc = subprocess.Popen(
        [sys.executable, "-m", "gateway.cli", "serve", "--config", str(config),
         "--port", str(port), "--log-level", log_level, "--workers", str(workers)],
        env=env, stdout=subprocess.DEVNULL, stderr=log.open("wb"))
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60  # a loaded 2-core machine can take long to import
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    raise AssertionError("gateway did not start: " + log.read_text())
