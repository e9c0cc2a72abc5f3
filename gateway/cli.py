"""`gateway` command: serve, check-config, models."""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path
from typing import Annotated

import typer
import uvicorn

from gateway.config import ConfigError, GatewayConfig, load_config

cli = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Switchyard: an OpenAI-compatible gateway for DeepSeek V4.")

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


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
