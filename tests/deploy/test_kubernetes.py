"""The Kubernetes manifests: valid against the API schemas (offline), and true to the app
(probe paths answer, commands exist, the ConfigMap's config loads)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import kubernetes_validate
import pytest
import yaml

from gateway.config import load_config
from tests.deploy.common import JSON, KUBERNETES, ROOT, load_yaml
from tests.e2e.conftest import GatewayFactory

# Schemas shipped inside kubernetes-validate (pinned in pyproject.toml): no network.
KUBERNETES_VERSION = "1.33.0"
PLACEHOLDER_ENV = {
    "GATEWAY_MASTER_KEY": "placeholder-master-key",
    "DATABASE_URL": "postgresql://switchyard:placeholder@postgres:5432/switchyard",
    "REDIS_URL": "redis://redis:6379/0",
    "DEEPSEEK_API_KEY": "placeholder-deepseek-key",
}
GATEWAY = str(Path(sys.executable).with_name("gateway"))


def manifests() -> list[tuple[str, JSON]]:
    out: list[tuple[str, JSON]] = []
    for path in sorted(KUBERNETES.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        out.extend((path.name, doc) for doc in yaml.safe_load_all(path.read_text()) if doc)
    return out


def one(kind: str) -> JSON:
    (found,) = [doc for _, doc in manifests() if doc["kind"] == kind]
    return found


def pod_spec(kind: str) -> JSON:
    spec: JSON = one(kind)["spec"]["template"]["spec"]
    return spec


def gateway_container() -> JSON:
    (container,) = pod_spec("Deployment")["containers"]
    found: JSON = container
    return found


def config_file(tmp_path: Path) -> Path:
    """The ConfigMap's gateway.yaml, written where --config can read it."""
    path = tmp_path / "gateway.yaml"
    path.write_text(one("ConfigMap")["data"]["gateway.yaml"])
    return path


def run_gateway(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items()
            if not k.endswith(("_API_KEY", "_BASE_URL")) and k not in PLACEHOLDER_ENV}
    return subprocess.run([GATEWAY, *args], capture_output=True, text=True, timeout=60,
                          env={**base, "COLUMNS": "200", "NO_COLOR": "1", **(env or {})})


@pytest.mark.parametrize(
    "doc", [pytest.param(doc, id=f"{name}:{doc['kind']}") for name, doc in manifests()])
def test_manifest_is_valid_against_the_kubernetes_schema(doc: JSON) -> None:
    """Strict schema validation: unknown fields and wrong types fail."""
    kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


def test_the_manifests_cover_the_deployment_and_kustomize_lists_them() -> None:
    """Every kind the brief needs is here; kustomize applies all but the Secret template and
    the migration Job (run by hand before a rollout)."""
    kinds = {doc["kind"] for _, doc in manifests()}
    assert {"Deployment", "Service", "ConfigMap", "Secret", "HorizontalPodAutoscaler", "Job",
            "PodDisruptionBudget"} <= kinds
    listed = load_yaml(KUBERNETES / "kustomization.yaml")["resources"]
    assert all((KUBERNETES / name).is_file() for name in listed)
    assert set(listed) == {name for name, _ in manifests()} - {
        "secret.example.yaml", "migrate-job.yaml"}


def test_probe_paths_answer_200_on_a_real_gateway(make_gateway: GatewayFactory) -> None:
    """readiness /readyz, liveness and startup /healthz: the app serves them."""
    container = gateway_container()
    probes = {name: container[name] for name in ("readinessProbe", "livenessProbe",
                                                 "startupProbe")}
    assert probes["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert probes["livenessProbe"]["httpGet"]["path"] == "/healthz"
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    gateway = make_gateway(["deepseek"])
    for name, probe in probes.items():
        assert probe["httpGet"]["port"] in ports, name
        r = httpx.get(gateway.url + probe["httpGet"]["path"], timeout=5)
        assert r.status_code == 200, (name, r.text)


def _options(args: list[str]) -> list[str]:
    return [a for a in args if a.startswith("--")]


@pytest.mark.parametrize("kind", ["Deployment", "Job"])
def test_container_commands_are_real_gateway_subcommands(kind: str) -> None:
    """`gateway <sub> --help` succeeds and lists every option the manifest passes."""
    for container in pod_spec(kind)["containers"]:
        command, args = container["command"], container.get("args", [])
        assert command[0] == "gateway" and len(command) == 2
        result = run_gateway(command[1], "--help")
        assert result.returncode == 0, result.stderr
        for option in _options(args):
            assert option in result.stdout, (kind, option)
    expected = {"Deployment": "serve", "Job": "migrate"}[kind]
    assert pod_spec(kind)["containers"][0]["command"][1] == expected


def test_the_configmap_config_passes_check_config(tmp_path: Path) -> None:
    """With placeholder secrets in the environment the config is valid and uses them."""
    path = config_file(tmp_path)
    result = run_gateway("check-config", "--config", str(path), env=PLACEHOLDER_ENV)
    assert result.returncode == 0, result.stderr
    assert "auth: master key" in result.stdout
    assert re.search(r"deepseek\s.*\[usable\]", result.stdout)

    config = load_config(path, env=PLACEHOLDER_ENV)
    assert config.metering.auto_migrate is False  # the Job migrates, replicas never race
    assert config.redis_url == PLACEHOLDER_ENV["REDIS_URL"]
    assert config.database_url is not None
    container = gateway_container()
    assert config.port in {p["containerPort"] for p in container["ports"]}
    args = container["args"]
    assert args[args.index("--config") + 1] == "/etc/switchyard/" + path.name
    mounts = {m["name"]: m for m in container["volumeMounts"]}
    assert mounts["config"]["mountPath"] == "/etc/switchyard"
    assert config.metering.spool_path.startswith(mounts["data"]["mountPath"] + "/")
    written = yaml.safe_load(path.read_text())  # secrets come from the Secret, not here
    assert not {"master_key", "database_url", "redis_url"} & set(written)
    assert all("api_key" not in p for p in written.get("providers", {}).values())


def test_the_migration_job_runs_gateway_migrate_with_the_configmap(tmp_path: Path) -> None:
    """The Job's exact command line migrates a database (SQLite here, Postgres in a cluster)."""
    (container,) = pod_spec("Job")["containers"]
    args = [a.replace("/etc/switchyard", str(tmp_path)) for a in container["args"]]
    config_file(tmp_path)
    db = tmp_path / "usage.db"
    result = run_gateway(container["command"][1], *args,
                         env={"DATABASE_URL": f"sqlite:///{db}"})
    assert result.returncode == 0, result.stderr
    assert "up to date" in result.stdout and db.is_file()
    volumes = {v["name"]: v for v in pod_spec("Job")["volumes"]}
    assert volumes["config"]["configMap"]["name"] == one("ConfigMap")["metadata"]["name"]


def _secret_refs(kind: str) -> list[JSON]:
    return [e["valueFrom"]["secretKeyRef"] for c in pod_spec(kind)["containers"]
            for e in c.get("env", []) if "secretKeyRef" in e.get("valueFrom", {})]


def test_secrets_come_from_the_template_and_it_holds_only_placeholders() -> None:
    """Every secretKeyRef names a key of the Secret template; required ones are the shared
    Postgres, Redis and master key; no value looks like a real key."""
    secret = one("Secret")
    data: dict[str, str] = secret["stringData"]
    refs = _secret_refs("Deployment") + _secret_refs("Job")
    for ref in refs:
        assert ref["name"] == secret["metadata"]["name"]
        assert ref["key"] in data
    required = {r["key"] for r in _secret_refs("Deployment") if not r.get("optional")}
    assert required == {"GATEWAY_MASTER_KEY", "DATABASE_URL", "REDIS_URL"}
    for key, value in data.items():
        assert "REPLACE_ME" in value, key
        assert not re.search(r"sk-[A-Za-z0-9]{8,}", value), key


def _config() -> JSON:
    config: JSON = yaml.safe_load(one("ConfigMap")["data"]["gateway.yaml"])
    return config


def _uvicorn_graceful_timeout() -> int:
    source = (ROOT / "gateway" / "cli.py").read_text()
    match = re.search(r"timeout_graceful_shutdown=(\d+)", source)
    assert match, "gateway/cli.py no longer sets timeout_graceful_shutdown"
    return int(match.group(1))


def test_shutdown_drains_before_the_pod_is_killed() -> None:
    """preStop sleeps so endpoints go first; the grace period covers that sleep, uvicorn's
    graceful timeout and the usage writer's drain."""
    spec = pod_spec("Deployment")
    command = gateway_container()["lifecycle"]["preStop"]["exec"]["command"]
    assert command[0] == "sleep"
    pre_stop = int(command[1])
    assert pre_stop >= 5
    shutdown = _config()["shutdown"]
    assert shutdown["drain_seconds"] >= 600  # long reasoning calls finish, not cut
    assert spec["terminationGracePeriodSeconds"] >= (
        pre_stop + shutdown["drain_seconds"] + shutdown["cut_grace"]
        + _uvicorn_graceful_timeout() + 15)


@pytest.mark.parametrize("kind", ["Deployment", "Job"])
def test_pods_run_as_non_root_with_resources(kind: str) -> None:
    """Non-root, no privilege escalation, read-only root, requests and limits."""
    spec = pod_spec(kind)
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["runAsUser"] != 0
    for container in spec["containers"]:
        context = container["securityContext"]
        assert context["allowPrivilegeEscalation"] is False
        assert context["readOnlyRootFilesystem"] is True
        assert context["capabilities"]["drop"] == ["ALL"]
        for part in ("requests", "limits"):
            assert {"cpu", "memory"} <= set(container["resources"][part]), (kind, part)


def test_the_image_user_and_workdir_match_the_pod() -> None:
    """The Dockerfile's numeric user is the pod's, and its workdir (where relative metering
    paths land) is the writable data volume."""
    dockerfile = (ROOT / "Dockerfile").read_text()
    user = re.findall(r"^USER (\d+)(?::(\d+))?$", dockerfile, re.M)[-1]
    workdir = re.findall(r"^WORKDIR (\S+)$", dockerfile, re.M)[-1]
    spec = pod_spec("Deployment")
    assert int(user[0]) == spec["securityContext"]["runAsUser"]
    mounts = {m["mountPath"] for m in gateway_container()["volumeMounts"]}
    assert workdir in mounts


def test_service_hpa_and_pdb_select_the_deployment() -> None:
    """Selectors and references line up."""
    deployment = one("Deployment")
    labels: dict[str, Any] = deployment["spec"]["template"]["metadata"]["labels"]
    service = one("Service")["spec"]
    assert service["selector"].items() <= labels.items()
    port_names = {p["name"] for p in gateway_container()["ports"]}
    assert all(p["targetPort"] in port_names for p in service["ports"])
    assert one("PodDisruptionBudget")["spec"]["selector"]["matchLabels"].items() <= labels.items()
    hpa = one("HorizontalPodAutoscaler")["spec"]
    assert hpa["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment",
                                     "name": deployment["metadata"]["name"]}
    assert hpa["minReplicas"] >= 2 and hpa["maxReplicas"] > hpa["minReplicas"]
