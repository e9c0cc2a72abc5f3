"""`gateway` command: serve, check-config, models, migrate, usage, keys, teams."""

from __future__ import annotations

import asyncio
import logging
import os
import tempfile
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer
import uvicorn

from gateway.config import ConfigError, GatewayConfig, load_config
from gateway.keys.commands import keys_cli, teams_cli

cli = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Switchyard: an OpenAI-compatible gateway for DeepSeek V4.")
cli.add_typer(keys_cli, name="keys")
cli.add_typer(teams_cli, name="teams")

ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="YAML config file (merged over the built-in defaults)."),
]


def _load(config: Path | None) -> GatewayConfig:
    try:
        return load_config(config)
    except ConfigError as exc:
        typer.secho(f"error: {exc}", err=True, fg=typer.colors.RED)
        raise typer.Exit(code=2) from None


@cli.command()
def serve(
    config: ConfigOption = None,
    host: Annotated[str | None, typer.Option(help="Address to bind (default from config).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default from config: 8000).")] = None,
    workers: Annotated[int, typer.Option(min=1, help="Worker processes.")] = 1,
    log_level: Annotated[str, typer.Option(help="debug, info, warning or error.")] = "info",
) -> None:
    """Run the gateway."""
    settings = _load(config)
    logging.basicConfig(
        level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    options = dict(
        host=host or settings.host, port=port or settings.port, loop="uvloop", http="httptools",
        access_log=False, log_level=log_level, timeout_graceful_shutdown=30,
    )
    if workers > 1:
        if config is not None:
            os.environ["SWITCHYARD_CONFIG"] = str(config.resolve())
        _prepare_multiprocess_metrics()
        uvicorn.run("gateway.app:app_from_env", factory=True, workers=workers, **options)  # type: ignore[arg-type]
    else:
        from gateway.app import create_app

        uvicorn.run(create_app(settings), **options)  # type: ignore[arg-type]


def _prepare_multiprocess_metrics() -> None:
    """Workers share Prometheus values through files in one directory, emptied at start so
    counts from an earlier run never leak into this one."""
    from gateway.metrics import MULTIPROC_ENV

    path = Path(os.environ.get(MULTIPROC_ENV) or tempfile.mkdtemp(prefix="switchyard-metrics-"))
    path.mkdir(parents=True, exist_ok=True)
    for stale in path.glob("*.db"):
        stale.unlink()
    os.environ[MULTIPROC_ENV] = str(path)


@cli.command("check-config")
def check_config(config: ConfigOption = None) -> None:
    """Validate the configuration and show which providers and models it serves."""
    settings = _load(config)
    usable = settings.usable_providers()
    typer.echo(f"providers with a key: {', '.join(usable) or 'none'}")
    for name, provider in settings.providers.items():
        state = "usable" if provider.usable else "no key" if provider.enabled else "disabled"
        typer.echo(f"  {name:12} {provider.kind:10} {provider.base_url}  [{state}]")
    typer.echo(f"auth: {'master key' if settings.master_key else 'loopback clients only'}")


@cli.command()
def models(config: ConfigOption = None) -> None:
    """List every model name the gateway accepts and what it resolves to."""
    from gateway.models import ModelCatalogue

    settings = _load(config)
    catalogue = ModelCatalogue(settings)
    for name in catalogue.names():
        resolved = catalogue.resolve(name)
        thinking = "thinking on" if resolved.default_thinking else "thinking off"
        typer.echo(f"{name:32} -> {resolved.canonical} ({thinking})")


@cli.command()
def migrate(config: ConfigOption = None) -> None:
    """Create or upgrade the usage tables (DATABASE_URL, else the SQLite file)."""
    from gateway.db import migrate as migrations
    from gateway.db.engine import create_engine, redacted
    from gateway.metering.setup import database_url

    url = database_url(_load(config))

    async def run() -> None:
        engine = create_engine(url)
        try:
            await migrations.upgrade(engine)
        finally:
            await engine.dispose()

    try:
        asyncio.run(run())
    except Exception as exc:
        typer.secho(f"error: migrating {redacted(url)} failed: {exc}", err=True,
                    fg=typer.colors.RED)
        raise typer.Exit(code=1) from None
    typer.echo(f"usage database at {redacted(url)} is up to date")


@cli.command()
def usage(
    config: ConfigOption = None,
    group_by: Annotated[str, typer.Option(
        "--group-by", "-g", help="model, provider, key, team or day.")] = "model",
    start: Annotated[str | None, typer.Option(
        "--from", help="ISO date or datetime (UTC), inclusive.")] = None,
    end: Annotated[str | None, typer.Option(
        "--to", help="ISO date or datetime (UTC), exclusive.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON rows.")] = False,
) -> None:
    """Requests, tokens and cost per group, read from the usage database."""
    import orjson
    from rich.console import Console
    from rich.table import Table

    from gateway.api.admin import parse_time
    from gateway.db.queries import GROUP_BYS
    from gateway.db.store import UsageStore
    from gateway.errors import InvalidRequest
    from gateway.metering.setup import database_url

    if group_by not in GROUP_BYS:
        typer.secho(f"error: --group-by must be one of {', '.join(GROUP_BYS)}", err=True,
                    fg=typer.colors.RED)
        raise typer.Exit(code=2)
    try:
        since, until = parse_time(start, "--from"), parse_time(end, "--to")
    except InvalidRequest as exc:
        typer.secho(f"error: {exc.message}", err=True, fg=typer.colors.RED)
        raise typer.Exit(code=2) from None
    store = UsageStore(database_url(_load(config)), auto_migrate=False)

    async def run() -> list[dict[str, object]]:
        try:
            return await store.report(group_by, since, until)  # type: ignore[arg-type]
        finally:
            await store.close()

    try:
        rows = asyncio.run(run())
    except Exception as exc:
        typer.secho(f"error: cannot read usage: {exc}", err=True, fg=typer.colors.RED)
        raise typer.Exit(code=1) from None
    if as_json:
        typer.echo(orjson.dumps(rows, option=orjson.OPT_INDENT_2).decode())
        return
    table = Table(title=f"usage by {group_by}" + _span(since, until))
    columns = [group_by, "requests", "errors", "prompt_tokens", "cache_hit_tokens",
               "cache_miss_tokens", "completion_tokens", "reasoning_tokens", "cost_usd",
               "provider_cost_usd"]
    for name in columns:
        table.add_column(name.replace("_tokens", "").replace("_", " "),
                         justify="left" if name == group_by else "right")
    for row in rows:
        table.add_row(*(_cell(row.get(name)) for name in columns))
    Console().print(table)


def _span(since: datetime | None, until: datetime | None) -> str:
    if since is None and until is None:
        return ""
    return f" ({since.isoformat() if since else '...'} to {until.isoformat() if until else '...'})"


def _cell(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.6f}"
    return str(value)


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
