"""The `gateway` command as an operator meets it: check-config's plan, usage reads, help."""

import asyncio
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from gateway.cli import cli
from gateway.db.engine import async_url
from gateway.db.store import UsageStore

NO_KEYS: dict[str, str | None] = {
    name: None for name in ("DEEPSEEK_API_KEY", "OPENROUTER_API_KEY", "OLLAMA_API_KEY",
                            "GATEWAY_MASTER_KEY", "DATABASE_URL", "REDIS_URL",
                            "SWITCHYARD_CONFIG", "GATEWAY_URL")
}


def run(*args: str, env: dict[str, str | None] | None = None) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args), env={**NO_KEYS, **(env or {})})
    return result.exit_code, result.output


def test_check_config_prints_the_plan(tmp_path: Path) -> None:
    path = tmp_path / "g.yaml"
    path.write_text(
        "aliases:\n  fast: {model: deepseek-v4-flash, thinking: false}\n"
        "routes:\n  deepseek-v4-flash:\n    strategy: weighted\n    targets:\n"
        "      - {provider: deepseek, weight: 3}\n      - {provider: ollama, priority: 1}\n"
        "redis_url: redis://:hunter2@127.0.0.1:6379/0\n"
    )
    code, out = run("check-config", "--config", str(path),
                    env={"DEEPSEEK_API_KEY": "sk-ds-secret", "OLLAMA_API_KEY": "ol-secret",
                         "GATEWAY_MASTER_KEY": "sk-master-secret"})
    assert code == 0, out
    assert "providers with a key: deepseek, ollama" in out
    assert "key: from $DEEPSEEK_API_KEY" in out and "none (set $OPENROUTER_API_KEY)" in out
    lines = out.splitlines()
    assert any(re.fullmatch(r"  fast +-> deepseek-v4-flash, thinking off", x) for x in lines)
    assert any(re.match(r"  deepseek-v4-pro +thinking on; ", x) for x in lines)
    routes = lines[lines.index("routes (targets in the order tried; priority levels first):"):]
    assert any(re.fullmatch(r"  deepseek-v4-flash +weighted: deepseek( \(\S+\))? \[weight 3\], "
                            r"ollama( \(\S+\))? \[priority 1, weight 1\]", x) for x in routes)
    assert any(re.fullmatch(r"  deepseek-v4-pro +ordered: deepseek( \(\S+\))?, ollama( \(\S+\))?",
                            x) for x in routes), routes
    assert "usage: SQLite file " in out
    assert "breakers and rate limits: redis://:***@127.0.0.1:6379/0" in out
    assert "auth: master key" in out
    for secret in ("sk-ds-secret", "ol-secret", "sk-master-secret", "hunter2"):
        assert secret not in out


def test_check_config_fails_when_nothing_could_be_served() -> None:
    code, out = run("check-config")
    assert code == 1
    assert "providers with a key: none" in out
    assert "error: no model can be served" in out and "DEEPSEEK_API_KEY" in out
    assert "auth: loopback clients only" in out


def test_check_config_names_every_missing_variable(tmp_path: Path) -> None:
    path = tmp_path / "g.yaml"
    path.write_text("master_key: ${A:?}\nhost: ${B:?bind address}\n")
    code, out = run("check-config", "--config", str(path))
    assert code == 2
    assert "${A} (at master_key)" in out and "${B} (at host): bind address" in out


def test_usage_never_creates_a_database_by_reading(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    code, out = run("usage")
    assert code == 1
    assert f"no usage database at {tmp_path / 'switchyard.db'}" in " ".join(out.split())
    assert "DATABASE_URL" in out and "--config" in out
    assert list(tmp_path.iterdir()) == []


def test_usage_from_the_config_serve_would_use(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Run from elsewhere, SWITCHYARD_CONFIG finds the file; the table fits 80 columns and
    never cuts a model name; --wide shows every column."""
    db = tmp_path / "data" / "usage.db"
    path = tmp_path / "g.yaml"
    path.write_text(f"metering:\n  sqlite_path: {db}\n")
    _seed(async_url(None, db))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    code, out = run("usage", env={"SWITCHYARD_CONFIG": str(path)})
    assert code == 0, out
    assert max(len(line) for line in out.splitlines()) <= 80, out
    first_column = "".join(line.split("│")[1].strip() for line in out.splitlines()
                           if "│" in line)
    assert "deepseek-v4-flash-with-a-long-name" in first_column, out
    assert "…" not in out
    code, wide = run("usage", "--wide", env={"SWITCHYARD_CONFIG": str(path)})
    assert code == 0 and "provider cost usd" in wide and "cache hit" in wide
    assert list(elsewhere.iterdir()) == []


def test_usage_on_an_unmigrated_database_says_what_to_run(tmp_path: Path) -> None:
    db = tmp_path / "empty.db"
    db.touch()
    code, out = run("usage", env={"DATABASE_URL": f"sqlite:///{db}"})
    assert code == 1
    assert "gateway migrate" in out and "Traceback" not in out


def _seed(url: str) -> None:
    async def go() -> None:
        store = UsageStore(url, auto_migrate=True)
        try:
            await store.prepare()
            await store.insert([{
                "id": "r1", "ts": datetime.now(UTC), "request_id": "req-1",
                "requested_model": "x", "model": "deepseek-v4-flash-with-a-long-name",
                "thinking": "on", "stream": False, "status": "ok", "prompt_tokens": 1234567,
                "completion_tokens": 7654321, "cost_usd": 1234.5678, "attempts": "",
            }])
        finally:
            await store.close()

    asyncio.run(go())


@pytest.mark.parametrize("command", [["serve"], ["usage"], ["keys", "list"], ["keys", "create"],
                                     ["teams", "list"]])
def test_flags_show_no_value_placeholder(command: list[str]) -> None:
    code, out = run(*command, "--help")
    assert code == 0, out
    assert "<bool>" not in out and "BOOLEAN" not in out
