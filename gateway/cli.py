"""`gateway` command: serve, check-config, models, prices, migrate, usage, keys, teams."""

from __future__ import annotations

import asyncio
import logging
import os
import tempfile
from collections.abc import Coroutine
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import typer
import uvicorn

from gateway import cli_help, logs
from gateway.config import ConfigError, GatewayConfig, load_config
from gateway.keys.commands import keys_cli, teams_cli
from gateway.serving import GuardedHttpTools

cli_help.install()
T = TypeVar("T")

cli = typer.Typer(add_completion=False, no_args_is_help=True, rich_markup_mode="markdown",
                  help="Switchyard: an OpenAI-compatible gateway for DeepSeek V4.")
cli.add_typer(keys_cli, name="keys")
cli.add_typer(teams_cli, name="teams")

LogFormatChoice = Literal["text", "json"]
ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", "-c", envvar="SWITCHYARD_CONFIG",
                 help="YAML config file (merged over the built-in defaults)."),
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
    workers: Annotated[int | None, typer.Option(min=1, help=(
        "Worker processes. Default: one per usable CPU when REDIS_URL is set, else 1 (without "
        "Redis each worker keeps its own limits, breakers and caches)."))] = None,
    log_level: Annotated[str, typer.Option(help="debug, info, warning or error.")] = "info",
    log_format: Annotated[LogFormatChoice, typer.Option(
        help="text, or json: one JSON object per line for log shippers.")] = "text",
    access_log: Annotated[bool, typer.Option(
        "--access-log/--no-access-log", help="One INFO line per call.")] = True,
) -> None:
    """Run the gateway."""
    from gateway.workers import SUPERVISOR_ENV, default_workers

    settings = _load(config)
    logs.configure(log_level, log_format, access_log=access_log)
    if workers is None:
        workers, why = default_workers(settings)
        logging.getLogger("gateway").info("workers: %s", why)
    else:
        logging.getLogger("gateway").info("workers: %d (--workers)", workers)
    options = dict(
        host=host or settings.host, port=port or settings.port, loop="uvloop",
        http=GuardedHttpTools,  # httptools + header-read timeout and connection limit
        access_log=False, log_level=log_level, timeout_graceful_shutdown=30, log_config=None,
    )
    if workers > 1:
        logs.export_settings(log_level, log_format, access_log=access_log)  # for the workers
        if config is not None:
            os.environ["SWITCHYARD_CONFIG"] = str(config.resolve())
        _prepare_multiprocess_metrics()
        os.environ[SUPERVISOR_ENV] = str(os.getpid())  # each worker dies with this process
        uvicorn.run("gateway.app:app_from_env", factory=True, workers=workers, **options)  # type: ignore[arg-type]
    else:
        from gateway.app import create_app

        uvicorn.run(create_app(settings, tune_gc=True), **options)  # type: ignore[arg-type]


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
    """Validate the configuration and print the plan it makes; exits 1 if nothing is served.

    The plan: providers and where their keys come from, models, aliases, routes, where usage
    goes, who may call."""
    from gateway.plan import build_plan

    plan = build_plan(_load(config))
    for line in plan.lines:
        typer.echo(line)
    for warning in plan.warnings:
        typer.secho(f"warning: {warning}", err=True, fg=typer.colors.YELLOW)
    for problem in plan.problems:
        typer.secho(f"error: {problem}", err=True, fg=typer.colors.RED)
    if not plan.serves:
        raise typer.Exit(code=1)


@cli.command()
def models(config: ConfigOption = None) -> None:
    """List every model name the gateway accepts and what it resolves to."""
    from gateway.models import ModelCatalogue

    settings = _load(config)
    catalogue = ModelCatalogue(settings)
    for name in catalogue.names():
        resolved = catalogue.resolve(name)
        thinking = f"thinking {resolved.default.mode}"
        typer.echo(f"{name:32} -> {resolved.canonical} ({thinking})")


@cli.command()
def prices(
    config: ConfigOption = None,
    at: Annotated[str | None, typer.Option(
        "--at", help="ISO date or datetime (UTC) to price at; default now.")] = None,
) -> None:
    """Print the price book and the price in force now (or --at) per provider."""
    from gateway.metering.report import price_lines

    when = None
    if at is not None:
        try:
            when = datetime.fromisoformat(at)
        except ValueError:
            typer.secho(f"error: --at {at!r} is not an ISO date or datetime", err=True,
                        fg=typer.colors.RED)
            raise typer.Exit(code=2) from None
        when = when if when.tzinfo else when.replace(tzinfo=UTC)
    for line in price_lines(_load(config), when):
        typer.echo(line)


@cli.command()
def migrate(config: ConfigOption = None) -> None:
    """Create or upgrade the usage tables (DATABASE_URL, else the SQLite file)."""
    from gateway.db import migrate as migrations
    from gateway.db.engine import create_engine, redacted
    from gateway.metering import rollups
    from gateway.metering.setup import database_url, price_book

    settings = _load(config)
    url = database_url(settings)

    async def run() -> int | None:
        engine = create_engine(url)
        try:
            await migrations.upgrade(engine)
            if await rollups.backfill_needed(engine):  # upgraded past 0006: fill the rollups
                return await rollups.rebuild_rollups(engine, price_book(settings))
            return None
        finally:
            await engine.dispose()

    try:
        filled = asyncio.run(run())
    except Exception as exc:
        typer.secho(f"error: migrating {redacted(url)} failed: {exc}", err=True,
                    fg=typer.colors.RED)
        raise typer.Exit(code=1) from None
    if filled is not None:
        typer.echo(f"hourly rollups backfilled from the usage rows ({filled} rows)")
    typer.echo(f"usage database at {redacted(url)} is up to date")


rollup_cli = typer.Typer(no_args_is_help=True,
                         help="The hourly usage rollups every report reads.")
cli.add_typer(rollup_cli, name="rollup")


@rollup_cli.command("rebuild")
def rollup_rebuild(
    config: ConfigOption = None,
    start: Annotated[str | None, typer.Option(
        "--from", help="Only hours from this ISO date or datetime (UTC) on.")] = None,
) -> None:
    """Recompute the hourly rollups from the raw usage rows, six hours per transaction
    (idempotent; safe while the gateway writes). Hours whose raw rows retention has pruned
    keep their rollups."""
    from gateway.api.admin import parse_time
    from gateway.db.engine import create_engine
    from gateway.errors import InvalidRequest
    from gateway.metering.rollups import rebuild_rollups
    from gateway.metering.setup import price_book

    try:
        since = parse_time(start, "--from")
    except InvalidRequest as exc:
        typer.secho(f"error: {exc.message}", err=True, fg=typer.colors.RED)
        raise typer.Exit(code=2) from None
    settings = _load(config)
    url = _existing_database(settings)

    async def run() -> int:
        engine = create_engine(url)
        try:
            return await rebuild_rollups(engine, price_book(settings), since)
        finally:
            await engine.dispose()

    written = _run_on_database(run(), url)
    typer.echo(f"rollups rebuilt: {written} hourly rows")


@cli.command()
def usage(
    config: ConfigOption = None,
    group_by: Annotated[str, typer.Option(
        "--group-by", "-g",
        help="model, provider, key, team, day, api, thinking or status.")] = "model",
    start: Annotated[str | None, typer.Option(
        "--from", help="ISO date or datetime (UTC), inclusive.")] = None,
    end: Annotated[str | None, typer.Option(
        "--to", help="ISO date (inclusive: the whole day) or datetime (UTC, exclusive).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON rows.")] = False,
    as_csv: Annotated[bool, typer.Option("--csv", help="Print CSV (a header line).")] = False,
    wide: Annotated[bool, typer.Option(
        "--wide", help="Every column (wider than 80).")] = False,
) -> None:
    """Requests, tokens and cost per group, from the usage database `serve` writes.

    Read from its hourly rollups. The database: DATABASE_URL, else metering.sqlite_path of
    the config (--config or SWITCHYARD_CONFIG)."""
    import orjson
    from rich.console import Console
    from rich.table import Table

    from gateway.api.admin import parse_time
    from gateway.db.queries import GROUP_BYS
    from gateway.db.store import UsageStore
    from gateway.errors import InvalidRequest

    if group_by not in GROUP_BYS:
        typer.secho(f"error: --group-by must be one of {', '.join(GROUP_BYS)}", err=True,
                    fg=typer.colors.RED)
        raise typer.Exit(code=2)
    try:
        since, until = parse_time(start, "--from"), parse_time(end, "--to", end=True)
    except InvalidRequest as exc:
        typer.secho(f"error: {exc.message}", err=True, fg=typer.colors.RED)
        raise typer.Exit(code=2) from None
    url = _existing_database(_load(config))
    store = UsageStore(url, auto_migrate=False)

    async def run() -> list[dict[str, object]]:
        try:
            return await store.report(group_by, since, until,  # type: ignore[arg-type]
                                      within=3600)  # a person waiting, not a request path
        finally:
            await store.close()

    rows = _run_on_database(run(), url)
    if as_json:
        typer.echo(orjson.dumps(rows, option=orjson.OPT_INDENT_2).decode())
        return
    if as_csv:
        from gateway.api.csvexport import to_csv

        typer.echo(to_csv(rows), nl=False)
        return
    table = Table(title=f"usage by {group_by}" + _span(since, until))
    columns = [group_by, "requests", "errors", "prompt_tokens", "completion_tokens", "cost_usd"]
    if wide:
        columns[4:4] = ["cache_hit_tokens", "cache_miss_tokens"]
        columns[-1:-1] = ["reasoning_tokens"]
        columns += ["provider_cost_usd", "failovers", "cache_savings_usd"]
    for name in columns:  # the group (a model, key or day) is never cut: it folds
        table.add_column(name.replace("_tokens", "").replace("_", " "), overflow="fold",
                         justify="left" if name == group_by else "right")
    for row in rows:
        table.add_row(*(_cell(row.get(name)) for name in columns))
    Console(width=240 if wide else None).print(table)


def _existing_database(settings: GatewayConfig) -> str:
    """The usage database `serve` writes; a SQLite file that does not exist is an error, not
    a new empty file (a read never creates one)."""
    from sqlalchemy.engine import make_url

    from gateway.metering.setup import database_url

    url = database_url(settings)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        path = Path(parsed.database or "").expanduser().resolve()
        if not path.is_file():
            where = ("DATABASE_URL" if settings.database_url is not None
                     else f"metering.sqlite_path ({settings.metering.sqlite_path}), relative "
                          "to the directory `gateway serve` runs in")
            typer.secho(
                f"error: no usage database at {path} (from {where}). Run this where the "
                "gateway runs, pass its --config (or set SWITCHYARD_CONFIG), or set "
                "DATABASE_URL", err=True, fg=typer.colors.RED)
            raise typer.Exit(code=1)
    return url


def _run_on_database(work: Coroutine[Any, Any, T], url: str) -> T:
    """Run a command's database work; a failure is one line naming what to fix, exit 1."""
    try:
        return asyncio.run(work)
    except Exception as exc:
        typer.secho(f"error: {_read_failure(exc, url)}", err=True, fg=typer.colors.RED)
        raise typer.Exit(code=1) from None


def _read_failure(exc: Exception, url: str) -> str:
    """One line an operator can act on, instead of SQLAlchemy's paragraph."""
    from gateway.db.engine import redacted

    text = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    first = text[0] if text else type(exc).__name__
    if "no such table" in first or "does not exist" in first:
        return (f"the database at {redacted(url)} has no usage tables yet: run "
                "`gateway migrate` (or start the gateway once)")
    return f"cannot read usage from {redacted(url)}: {first}"


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
