"""The Grafana dashboard and its provisioning: static checks, then every panel query run
against a real Prometheus scraping a real gateway under load."""

from __future__ import annotations

import math
import re
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml
from openai.types.chat import ChatCompletionMessageParam
from prometheus_client.parser import text_string_to_metric_families

from gateway.metrics import GatewayMetrics
from gateway.usage import Usage, UsageEvent
from tests.deploy.common import (
    COMPOSE,
    DASHBOARD,
    GRAFANA_PROVISIONING,
    JSON,
    POSTGRES,
    ROOT,
    dashboard,
    load_yaml,
    panels,
    queries,
    sql_queries,
)
from tests.e2e.conftest import GatewayFactory, RunningGateway, Upstreams
from tests.upstream.common import Faults

# Grafana's built-in variables, replaced the way Grafana would for a recent time range.
GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$__range": "1h", "$__interval": "15s"}
MESSAGES: list[ChatCompletionMessageParam] = [{"role": "user", "content": "three little words"}]


def promql(expr: str) -> str:
    for name, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(name, value)
    return expr


def _datasource_reference(board: JSON, provisioning: str) -> JSON:
    """The panel reference to the datasource variable whose default is the uid provisioned in
    deploy/grafana/provisioning/datasources/<provisioning>."""
    (source,) = load_yaml(GRAFANA_PROVISIONING / "datasources" / provisioning)["datasources"]
    (variable,) = [v for v in board["templating"]["list"]
                   if v["type"] == "datasource" and v["query"] == source["type"]]
    assert variable["current"]["value"] == source["uid"]
    return {"type": source["type"], "uid": "${" + variable["name"] + "}"}


def test_every_panel_queries_through_a_provisioned_datasource() -> None:
    """Each query panel uses a datasource variable whose default is a provisioned uid:
    Prometheus for the metric panels, the usage database for the team and key panels."""
    board = dashboard()
    prometheus = _datasource_reference(board, "prometheus.yaml")
    usage_db = _datasource_reference(board, "usage-postgres.yaml")
    assert prometheus["type"] == "prometheus" and usage_db["type"] == POSTGRES
    found = queries(board)
    assert len(found) >= 15
    for title, target in found:
        assert target["datasource"] == prometheus, title
        leftover = re.findall(r"\$\w+", promql(target["expr"]))
        assert not leftover, f"{title}: unknown variables {leftover}"
    sql = sql_queries(board)
    assert len(sql) >= 4
    for title, target in sql:
        assert target["datasource"] == usage_db, title
        assert target["rawQuery"] and target["format"] in ("time_series", "table"), title
    every_target = [t for p in panels(board) for t in p.get("targets", [])]
    assert len(every_target) == len(found) + len(sql)  # no third kind of query
    ids = [p["id"] for p in panels(board)]
    assert len(ids) == len(set(ids))
    for panel in panels(board):
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        if panel["type"] not in ("row", "text"):
            assert panel["datasource"] in (prometheus, usage_db), panel["title"]
            assert panel["targets"], panel["title"]
            assert all(t["datasource"] == panel["datasource"] for t in panel["targets"])


def test_the_dashboard_says_where_team_and_key_spend_come_from() -> None:
    """Team and key are not metric labels; a text panel says the team and key panels read the
    usage database, and those panels sit in their own row."""
    board = dashboard()
    texts = [p["options"]["content"] for p in panels(board) if p["type"] == "text"]
    assert any("usage database" in t and "team" in t and "key" in t and "bounded" in t
               for t in texts)
    assert not any("not on the dashboard" in t for t in texts)
    for _, target in queries(board):
        assert not re.search(r"\b(team|key_id|key)\b", target["expr"]), target["expr"]
    rows = [p for p in board["panels"] if p["type"] == "row"]
    (row,) = [p for p in rows if p["title"] == "Spend by team and key (usage database)"]
    below = [p for p in board["panels"] if p["gridPos"]["y"] > row["gridPos"]["y"]
             and not any(r["gridPos"]["y"] > row["gridPos"]["y"] for r in rows
                         if r["gridPos"]["y"] < p["gridPos"]["y"])]
    assert {p["title"] for p in below} == {title for title, _ in sql_queries(board)}


def test_compose_mounts_the_provisioning_where_it_points() -> None:
    """Grafana's dashboard provider reads the directory compose mounts the JSON into, and the
    datasource URL names compose's Prometheus service."""
    compose = load_yaml(COMPOSE)
    grafana = compose["services"]["grafana"]
    mounts = dict(v.split(":")[:2] for v in grafana["volumes"] if v.startswith("./"))
    assert mounts["./deploy/grafana/provisioning"] == "/etc/grafana/provisioning"
    dashboards_dir = mounts["./deploy/grafana/dashboards"]
    (provider,) = load_yaml(GRAFANA_PROVISIONING / "dashboards" / "switchyard.yaml")["providers"]
    assert provider["type"] == "file" and provider["folder"] == "Switchyard"
    assert provider["options"]["path"] == dashboards_dir
    home = grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert home == f"{dashboards_dir}/{DASHBOARD.name}"
    (source,) = load_yaml(GRAFANA_PROVISIONING / "datasources" / "prometheus.yaml")[
        "datasources"]
    assert source["url"] == "http://prometheus:9090"
    assert "prometheus" in compose["services"]


def _compose_value(value: str) -> str:
    """A compose environment value with `${NAME:-default}` resolved to its default (no .env)."""
    return re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", value)


def test_the_usage_database_datasource_reaches_compose_postgres() -> None:
    """The PostgreSQL datasource's ${...} placeholders are all set on compose's grafana service
    and, with compose's defaults, name the postgres service, its database and its credentials."""
    compose = load_yaml(COMPOSE)
    grafana = compose["services"]["grafana"]
    postgres = compose["services"]["postgres"]["environment"]
    env = {name: _compose_value(str(value)) for name, value in grafana["environment"].items()}
    text = (GRAFANA_PROVISIONING / "datasources" / "usage-postgres.yaml").read_text()
    placeholders = set(re.findall(r"\$\{(\w+)\}", text))
    assert placeholders and placeholders <= set(env), placeholders - set(env)
    assert not re.findall(r"\$(?!\{)", text.split("\napiVersion")[1])  # only ${NAME} forms
    expanded = re.sub(r"\$\{(\w+)\}", lambda m: env[m.group(1)], text)
    (source,) = yaml.safe_load(expanded)["datasources"]
    assert source["type"] == POSTGRES and source["access"] == "proxy"
    assert source["url"] == "postgres:5432"
    assert source["jsonData"]["database"] == postgres["POSTGRES_DB"]
    assert source["user"] == postgres["POSTGRES_USER"]
    assert source["secureJsonData"]["password"] == postgres["POSTGRES_PASSWORD"]
    assert source["editable"] is False and not source.get("isDefault")
    assert "postgres" in grafana["depends_on"]
    assert "read-only" in text.lower() or "read only" in text.lower()


# --------------------------------------------------------------------------- live


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Prometheus:
    """A throwaway Prometheus (Debian's package binary) with its own config, data and port."""

    def __init__(self, binary: str, target: str, workdir: Path) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        workdir.mkdir(parents=True, exist_ok=True)
        config = workdir / "prometheus.yml"
        config.write_text(yaml.safe_dump({
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "scrape_configs": [{"job_name": "switchyard", "scrape_interval": "1s",
                                "static_configs": [{"targets": [target]}]}],
        }))
        self.log = (workdir / "prometheus.log").open("wb")
        self.proc = subprocess.Popen(
            [binary, f"--config.file={config}", f"--storage.tsdb.path={workdir / 'data'}",
             f"--web.listen-address=127.0.0.1:{self.port}", "--log.level=warn"],
            stdout=self.log, stderr=subprocess.STDOUT)

    def query(self, expr: str) -> list[JSON]:
        r = httpx.get(self.url + "/api/v1/query", params={"query": expr}, timeout=5)
        body = r.json()
        assert r.status_code == 200 and body["status"] == "success", (expr, body)
        result: list[JSON] = body["data"]["result"]
        return result

    def ready(self) -> bool:
        """Prometheus answers 503 "Service Unavailable" (plain text) until its TSDB is open."""
        try:
            return httpx.get(self.url + "/-/ready", timeout=5).status_code == 200
        except httpx.HTTPError:
            return False

    def wait_for(self, expr: str, expected: float, timeout: float = 30) -> None:
        """Until `expr` (a single-series query) equals `expected`."""
        deadline = time.monotonic() + timeout
        seen: object = None
        while time.monotonic() < deadline:
            try:
                result = self.query(expr) if self.ready() else []
            except httpx.HTTPError:
                result = []
            if result:
                seen = float(result[0]["value"][1])
                if seen == expected:
                    return
            assert self.proc.poll() is None, "prometheus exited; see its log"
            time.sleep(0.2)
        raise AssertionError(f"{expr} stayed at {seen}, expected {expected}")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


@pytest.fixture
def prometheus_binary() -> str:
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.skip("the prometheus binary is not installed (Debian: apt-get install "
                    "prometheus; .ci/run installs it)")
    return binary


@pytest.fixture
def loaded_gateway(make_gateway: GatewayFactory, upstreams: Upstreams,
                   tmp_path: Path) -> RunningGateway:
    """Flash fails over from Ollama (503) to DeepSeek; pro has only OpenRouter, which fails.
    Metering writes to SQLite in tmp, so the usage writer's gauges are exported."""
    upstreams.ollama.faults = Faults(status=503)
    upstreams.openrouter.faults = Faults(status=500)
    return make_gateway(yaml=(
        "routes:\n"
        "  deepseek-v4-flash: [{provider: ollama}, {provider: deepseek}]\n"
        "  deepseek-v4-pro: [{provider: openrouter}]\n"
        "routing: {max_attempts: 2, backoff_base: 0.001, backoff_max: 0.01,\n"
        "          breaker: {consecutive_failures: 1000, min_requests: 1000}}\n"
        f"metering: {{spool_path: {tmp_path / 'spool'}}}\n"
    ), env={"DATABASE_URL": f"sqlite:///{tmp_path / 'usage.db'}"})


def _send_wave(gateway: RunningGateway) -> int:
    """Plain, streamed and failing requests; returns how many were sent."""
    client = gateway.openai()
    sent = 0
    for _ in range(8):
        client.chat.completions.create(model="deepseek-chat", messages=MESSAGES)
        sent += 1
    for _ in range(6):
        stream = client.chat.completions.create(
            model="deepseek-reasoner", messages=MESSAGES, stream=True,
            stream_options={"include_usage": True})
        for _ in stream:
            pass
        sent += 1
    with gateway.http() as http:
        for _ in range(3):
            r = http.post("/v1/chat/completions",
                          json={"model": "deepseek-v4-pro", "messages": MESSAGES})
            assert r.status_code >= 500
            sent += 1
    return sent + _other_apis_and_refusals(gateway)


# (api, model, reason) of the refusals each wave adds; model "" is a refusal before the model
# was resolved, which the metrics count under model "none".
REFUSALS = [("openai.chat", "deepseek-v4-flash", "rate_limit_exceeded"),
            ("anthropic.messages", "", "invalid_api_key")]


def _other_apis_and_refusals(gateway: RunningGateway) -> int:
    """Refusals and a call served through another client API, handed to the gateway's own
    metrics sink the way the request pipeline ends every call (one usage event), so every
    panel sees series of each shape the gateway exports whichever of them the pipeline
    produces today. Returns how many requests that adds."""
    metrics: GatewayMetrics = gateway.server.app.state.gateway.metrics  # type: ignore[attr-defined]
    for api, model, reason in REFUSALS:
        metrics.record(UsageEvent(
            request_id="refused", requested_model=model, model=model, thinking="off",
            stream=False, status="refused", error_type=reason, api=api, latency_s=0.001))
    metrics.record(UsageEvent(
        request_id="anthropic", requested_model="deepseek-chat", model="deepseek-v4-flash",
        thinking="off", stream=True, status="ok", provider="deepseek",
        upstream_model="deepseek-v4-flash", attempts=[("deepseek", "200")],
        usage=Usage(prompt_tokens=3, completion_tokens=4), latency_s=0.05, ttft_s=0.01,
        overhead_s=0.0004, cost_usd=0.000001, api="anthropic.messages"))
    return len(REFUSALS) + 1


@pytest.fixture
def prometheus(prometheus_binary: str, loaded_gateway: RunningGateway,
               tmp_path: Path) -> Iterator[Prometheus]:
    server = Prometheus(prometheus_binary, loaded_gateway.url.removeprefix("http://"),
                        tmp_path / "prometheus")
    try:
        yield server
    finally:
        server.stop()


def test_every_panel_query_gets_data_from_a_real_prometheus(
    prometheus: Prometheus, loaded_gateway: RunningGateway
) -> None:
    """Two waves of load, each scraped; then every dashboard query (read from the JSON)
    returns finite data whose labels fill the panel's legend."""
    prometheus.wait_for('up{job="switchyard"}', 1)
    total = 0
    for _ in range(2):  # the first scrape creates the series; the second gives rates
        total += _send_wave(loaded_gateway)
        prometheus.wait_for("sum(gateway_requests_total)", total)
    board = dashboard()
    for title, target in queries(board):
        expr = promql(target["expr"])
        result = prometheus.query(expr)
        assert result, f"{title}: no data for {expr}"
        values = [float(series["value"][1]) for series in result]
        assert any(math.isfinite(v) for v in values), f"{title}: only NaN for {expr}"
        for label in re.findall(r"\{\{(\w+)\}\}", target.get("legendFormat", "")):
            assert all(label in series["metric"] for series in result), (title, label)

    # the failover and error panels see what the load did
    failed = prometheus.query(promql(
        'sum by (provider, outcome) (increase(gateway_upstream_attempts_total'
        '{outcome!="200"}[$__range]))'))
    assert {(s["metric"]["provider"], s["metric"]["outcome"]) for s in failed} == {
        ("ollama", "503"), ("openrouter", "500")}
    # refusals have their own panel, by api and reason, and stay out of errors and latency
    exprs = {title: promql(t["expr"]) for title, t in queries(board)}
    refused = prometheus.query(exprs["Refusals by API and reason (req/s)"])
    assert {(s["metric"]["api"], s["metric"]["reason"]) for s in refused} == {
        (api, reason) for api, _, reason in REFUSALS}
    errors = prometheus.query(exprs["Errors (req/s)"])
    assert errors and {s["metric"]["status"] for s in errors} == {"error"}
    [ratio] = prometheus.query(exprs["Error ratio (range)"])
    assert 0 < float(ratio["value"][1]) < 1
    for title in ("Request latency p50 / p95", "Time to first token p50 / p95"):
        models = {s["metric"]["model"] for s in prometheus.query(exprs[title])}
        assert "none" not in models, title
    by_api = prometheus.query(exprs["Requests per API and status (req/s)"])
    assert {(s["metric"]["api"], s["metric"]["status"]) for s in by_api} >= {
        ("openai.chat", "ok"), ("openai.chat", "refused"), ("anthropic.messages", "ok"),
        ("anthropic.messages", "refused")}
    # the new labels do not split what the other panels sum: one series per model/provider/
    # status whatever the api and reason
    per_model = prometheus.query(exprs["Requests per model, provider and status (req/s)"])
    keys = [(s["metric"]["model"], s["metric"]["provider"], s["metric"]["status"])
            for s in per_model]
    assert len(keys) == len(set(keys)) and ("deepseek-v4-flash", "deepseek", "ok") in keys
    assert ("none", "none", "refused") in keys
    text = httpx.get(loaded_gateway.url + "/metrics").text
    exported = {f.name for f in text_string_to_metric_families(text)
                if f.name.startswith("gateway_") and not f.name.endswith("_created")}
    on_board = " ".join(t["expr"] for _, t in queries(board))
    missing = sorted(name for name in exported if name not in on_board)
    assert not missing, f"exported but on no panel of {DASHBOARD.relative_to(ROOT)}: {missing}"
