"""What a configuration would do once served, in words (`gateway check-config`).

An operator checks a config by reading what the gateway will do with it: which providers
have keys (and where each key comes from, never the key), which names it accepts, which
targets serve each model in which order, where usage goes and who may call. Built from the
same objects `create_app` builds, so the plan cannot drift from what `serve` does.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from gateway.config import GatewayConfig, ProviderConfig

_LOOPBACK = {"127.0.0.1", "::1", "localhost"}


@dataclass
class Plan:
    lines: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # the gateway could serve nothing
    warnings: list[str] = field(default_factory=list)

    @property
    def serves(self) -> bool:
        return not self.problems


def build_plan(config: GatewayConfig) -> Plan:
    from gateway.metering.setup import database_url, metering_enabled
    from gateway.models import ModelCatalogue
    from gateway.providers import build_provider
    from gateway.reasoning_memory import ReasoningMemory
    from gateway.routing.policy import RouteTable
    from gateway.workers import default_workers

    plan = Plan()
    out = plan.lines
    usable = config.usable_providers()
    out.append(f"providers with a key: {', '.join(usable) or 'none'}")
    for name, provider in config.providers.items():
        state = "usable" if provider.usable else "no key" if provider.enabled else "disabled"
        out.append(f"  {name:12} {provider.kind:10} {provider.base_url}  [{state}]"
                   f"  key: {_key_source(provider)}")

    catalogue = ModelCatalogue(config)
    width = max(len(name) for name in [*config.models, *config.aliases, ""])
    out.append("models (thinking default; other names):")
    for model, cfg in config.models.items():
        aliases = [a for a in catalogue.names() if a != model and a not in config.aliases
                   and catalogue.resolve(a).canonical == model]
        out.append(f"  {model:{width}} thinking {_mode(cfg.thinking)}"
                   + (f"; {', '.join(aliases)}" if aliases else ""))
    for name, alias in config.aliases.items():
        forced = "" if alias.thinking is None else f", thinking {_mode(alias.thinking)}"
        out.append(f"  {name:{width}} -> {alias.model}{forced}")

    memory = ReasoningMemory()
    routes = RouteTable(config, {n: build_provider(n, p, memory) for n, p in usable.items()})
    out.append("routes (targets in the order tried; priority levels first):")
    for model in config.models:
        route = routes.route(model)
        if not route.targets:
            out.append(f"  {model:{width}} nothing: no provider with a key serves it")
            continue
        targets = ", ".join(_target(t.provider.name, t.upstream_model, model, t.priority,
                                    t.weight, t.thinking, route.strategy)
                            for t in sorted(route.targets, key=lambda t: t.priority))
        out.append(f"  {model:{width}} {route.strategy}: {targets}")
    if not routes.servable_models():
        plan.problems.append(
            "no model can be served: no provider has an API key (set DEEPSEEK_API_KEY, "
            "OPENROUTER_API_KEY or OLLAMA_API_KEY, or providers.<name>.api_key); every call "
            "would get a 503")

    if metering_enabled(config, custom_sink=False):
        url = database_url(config)
        where = (f"SQLite file {Path(config.metering.sqlite_path).resolve()}"
                 if config.database_url is None else _redacted(url))
        out.append(f"usage: {where} (spool: {Path(config.metering.spool_path).resolve()})")
    else:
        out.append("usage: not stored (metering.enabled: false); metrics and the access log only")
    shared = _redacted(config.redis_url) if config.redis_url else "per process (no REDIS_URL)"
    out.append(f"breakers and rate limits: {shared}")
    out.append(f"workers (gateway serve without --workers): {default_workers(config)[1]}")
    keys = "on" if metering_enabled(config, custom_sink=False) else "off (no usage database)"
    if config.master_key:
        out.append(f"auth: master key (GATEWAY_MASTER_KEY); gateway keys {keys}")
    else:
        out.append(f"auth: loopback clients only (no GATEWAY_MASTER_KEY); gateway keys {keys}")
        if config.host not in _LOOPBACK:
            plan.warnings.append(
                f"host is {config.host} but no master key is set: remote clients need a "
                "gateway key (set GATEWAY_MASTER_KEY to administer it remotely)")
    out.append(f"listen: http://{config.host}:{config.port} (gateway serve --port to change)")
    return plan


def _mode(thinking: object) -> str:
    """A thinking default as said in the config: on, off or a mode name."""
    if isinstance(thinking, bool):
        return "on" if thinking else "off"
    return str(thinking)


def _key_source(provider: ProviderConfig) -> str:
    """Where the key came from (the environment wins over the file), never the key."""
    var = provider.api_key_env
    if provider.api_key is not None and provider.api_key.get_secret_value():
        return f"from ${var}" if var and os.environ.get(var) else "from the config file"
    return f"none (set ${var})" if var else "none (set api_key)"


def _target(provider: str, upstream: str, model: str, priority: int, weight: float,
            thinking: bool | None, strategy: str) -> str:
    text = provider if upstream == model else f"{provider} ({upstream})"
    notes = []
    if priority:
        notes.append(f"priority {priority}")
    if strategy == "weighted":
        notes.append(f"weight {weight:g}")
    if thinking is not None:
        notes.append(f"thinking {'on' if thinking else 'off'}")
    return text + (f" [{', '.join(notes)}]" if notes else "")


def _redacted(url: str) -> str:
    """A URL without its password (database and Redis URLs carry them)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc}"))
