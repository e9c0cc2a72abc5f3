"""Paths and loaders shared by the deployment tests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "switchyard.json"
GRAFANA_PROVISIONING = DEPLOY / "grafana" / "provisioning"
PROMETHEUS_CONFIG = DEPLOY / "prometheus" / "prometheus.yml"
KUBERNETES = DEPLOY / "kubernetes"
COMPOSE = ROOT / "docker-compose.yml"

JSON = dict[str, Any]


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def dashboard() -> JSON:
    data: JSON = json.loads(DASHBOARD.read_text())
    return data


def panels(board: JSON) -> list[JSON]:
    """Every panel, including those nested in collapsed rows."""
    out: list[JSON] = []
    for panel in board["panels"]:
        out.append(panel)
        out.extend(panel.get("panels", []))
    return out


def targets(board: JSON, datasource_type: str) -> list[tuple[str, JSON]]:
    """(panel title, target) for every query on the dashboard sent to that datasource type."""
    return [(p["title"], t) for p in panels(board) for t in p.get("targets", [])
            if t["datasource"]["type"] == datasource_type]


def queries(board: JSON) -> list[tuple[str, JSON]]:
    """(panel title, target) for every Prometheus query on the dashboard."""
    return targets(board, "prometheus")


POSTGRES = "grafana-postgresql-datasource"  # Grafana's built-in PostgreSQL data source


def sql_queries(board: JSON) -> list[tuple[str, JSON]]:
    """(panel title, target) for every usage-database (SQL) query on the dashboard."""
    return targets(board, POSTGRES)
