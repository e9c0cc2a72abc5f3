"""docker-compose.yml and the Prometheus config it mounts (no Docker engine needed)."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from gateway.config import load_config
from tests.deploy.common import COMPOSE, PROMETHEUS_CONFIG, ROOT, load_yaml

SERVICES = {"gateway", "postgres", "redis", "prometheus", "grafana"}


def test_compose_runs_the_whole_stack_wired_together() -> None:
    """Five services; the gateway gets its master key, Postgres and Redis; bind mounts exist."""
    compose = load_yaml(COMPOSE)
    services = compose["services"]
    assert set(services) == SERVICES
    env = services["gateway"]["environment"]
    assert env["GATEWAY_MASTER_KEY"].startswith("${GATEWAY_MASTER_KEY:?")
    assert "@postgres:" in env["DATABASE_URL"] and "//redis:" in env["REDIS_URL"]
    config = load_config(None, env={"DATABASE_URL": env["DATABASE_URL"],
                                    "REDIS_URL": env["REDIS_URL"]})
    assert config.redis_url == env["REDIS_URL"]
    for name, service in services.items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (ROOT / source).exists(), (name, source)
            else:
                assert source in compose["volumes"], (name, source)
    assert services["prometheus"]["volumes"][0].startswith(
        "./" + str(PROMETHEUS_CONFIG.relative_to(ROOT)) + ":")


def test_prometheus_scrapes_the_gateway_service() -> None:
    """The compose Prometheus scrapes gateway:<its container port>/metrics."""
    config = load_yaml(PROMETHEUS_CONFIG)
    (job,) = config["scrape_configs"]
    assert job.get("metrics_path", "/metrics") == "/metrics"
    (static,) = job["static_configs"]
    ports = load_yaml(COMPOSE)["services"]["gateway"]["ports"]
    container_ports = {p.split(":")[-1] for p in ports}
    assert static["targets"] == [f"gateway:{port}" for port in sorted(container_ports)]


def test_promtool_accepts_the_prometheus_config() -> None:
    """Syntax and semantics as Prometheus itself reads them."""
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool (Debian package prometheus) is not installed")
    result = subprocess.run([promtool, "check", "config", str(PROMETHEUS_CONFIG)],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stdout + result.stderr
