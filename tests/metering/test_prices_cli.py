"""`gateway prices`: the book's dated entries with their sources, and the price in force."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from gateway.cli import cli

NO_KEYS: dict[str, str | None] = {
    name: None for name in ("DEEPSEEK_API_KEY", "OPENROUTER_API_KEY", "OLLAMA_API_KEY",
                            "GATEWAY_MASTER_KEY", "DATABASE_URL", "REDIS_URL",
                            "SWITCHYARD_CONFIG")
}


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args), env=NO_KEYS)
    return result.exit_code, result.output


def test_prices_prints_the_book_and_the_price_in_force(tmp_path: Path) -> None:
    code, out = run("prices", "--at", "2026-12-01T02:00")
    assert code == 0, out
    assert "from 2026-09-10 04:00  0.003 / 0.15 / 0.6  peak x2 (deepseek-peak)" in out
    assert "<https://api-docs.deepseek.com/updates>" in out
    assert "from 2026-04-26 12:15  0.0028 / 0.14 / 0.28" in out
    lines = out.splitlines()
    in_force = lines[lines.index("in force at 2026-12-01 02:00 UTC") + 1:]
    assert any(line.split()[:2] == ["deepseek", "deepseek-v4-pro"]
               and "0.044 / 1.32 / 3.96  peak" in line for line in in_force)
    assert any(line.split()[:2] == ["openrouter", "deepseek-v4-flash"]
               and "0.003 / 0.15 / 0.6  off-peak" in line for line in in_force)
    assert any(line.split()[:2] == ["ollama", "deepseek-v4-flash"]
               and "0 / 0 / 0  off-peak (subscription)" in line for line in in_force)


def test_prices_follows_a_per_token_ollama_account(tmp_path: Path) -> None:
    path = tmp_path / "g.yaml"
    path.write_text("providers:\n  ollama:\n    billing: per_token\n")
    code, out = run("prices", "--config", str(path), "--at", "2026-12-01")
    assert code == 0, out
    assert any(line.split()[:2] == ["ollama", "deepseek-v4-flash"]
               and "0.014 / 0.44 / 1.32  off-peak (per_token)" in line
               for line in out.splitlines())
    code, out = run("prices", "--at", "yesterday")
    assert code == 2 and "not an ISO date" in out
