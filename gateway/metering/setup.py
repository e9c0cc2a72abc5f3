"""Builds the metering writer from the configuration (called by create_app only)."""

from __future__ import annotations

from gateway.config import GatewayConfig
from gateway.db.engine import async_url
from gateway.db.store import UsageStore
from gateway.metering.journal import Journal
from gateway.metering.prices import PriceBook
from gateway.metering.spool import Spool
from gateway.metering.writer import MeteringWriter


def database_url(config: GatewayConfig) -> str:
    """The async URL usage rows go to: DATABASE_URL, else the SQLite file."""
    given = config.database_url.get_secret_value() if config.database_url else None
    return async_url(given, config.metering.sqlite_path)


def metering_enabled(config: GatewayConfig, *, custom_sink: bool) -> bool:
    if config.metering.enabled is not None:
        return config.metering.enabled
    return not custom_sink or config.database_url is not None


def price_book(config: GatewayConfig) -> PriceBook:
    """The book with the config's overrides; a `billing: per_token` account reads the
    `<kind>-per-token` prices, a subscription its kind's (0 per token for Ollama)."""
    billed = {name: f"{p.kind}-per-token" for name, p in config.providers.items()
              if p.billing == "per_token"}
    return PriceBook.load(config.prices, {name: p.kind for name, p in config.providers.items()},
                          billed)


def build_writer(config: GatewayConfig, *, custom_sink: bool) -> MeteringWriter | None:
    if not metering_enabled(config, custom_sink=custom_sink):
        return None
    settings = config.metering
    spool = Spool(settings.spool_path)
    return MeteringWriter(
        UsageStore(database_url(config), auto_migrate=settings.auto_migrate,
                   report_slots=settings.report_slots),
        spool,
        price_book(config),
        journal=Journal(spool, fsync=settings.journal_fsync) if settings.journal else None,
        batch_size=settings.batch_size,
        flush_interval=settings.flush_interval,
        queue_size=settings.queue_size,
        retry_max=settings.retry_max,
        insert_timeout=settings.insert_timeout,
        retention_days=settings.retention_days,
        prune_interval=settings.prune_interval,
    )
