"""SQLAlchemy Core tables. Migrations in gateway/migrations/versions must match these."""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    SmallInteger,
    String,
    Table,
    Text,
    text,
)

metadata = MetaData()

# One row per finished request. `id` is minted by the gateway when the row is built (before any
# spooling), so a row replayed twice is inserted once; `request_id` may come from the client
# (x-request-id) and is therefore indexed but not unique. `api` is the client API that served
# the call ("openai.chat", "anthropic.messages", ...); rows from before it existed were all
# OpenAI Chat. A refused call (status "refused", its reason in `error_type`) has no provider,
# no tokens and cost 0, and `model`/`requested_model` "" when it was refused before either was
# known. `cost_usd` is what was billed: the provider's own figure where it reports one
# (`provider_cost_usd`, OpenRouter), else the price book's; `book_cost_usd` is the book's figure
# either way, for comparison (None on rows from before revision 0005).
usage = Table(
    "usage",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("ts", DateTime(timezone=True), nullable=False),
    Column("request_id", String(128), nullable=False),
    Column("key_id", String(64)),
    Column("team", String(128)),
    Column("client_user", String(256)),
    Column("requested_model", String(128), nullable=False),
    Column("model", String(64), nullable=False),
    Column("provider", String(64)),
    Column("upstream_model", String(128)),
    Column("thinking", String(32), nullable=False),
    Column("stream", Boolean, nullable=False),
    Column("status", String(20), nullable=False),
    Column("error_type", String(64)),
    Column("attempts", Text, nullable=False, default=""),
    Column("prompt_tokens", Integer, nullable=False, default=0),
    Column("cache_hit_tokens", Integer, nullable=False, default=0),
    Column("cache_miss_tokens", Integer, nullable=False, default=0),
    Column("completion_tokens", Integer, nullable=False, default=0),
    Column("reasoning_tokens", Integer, nullable=False, default=0),
    Column("cost_usd", Float, nullable=False, default=0.0),
    Column("provider_cost_usd", Float),
    Column("book_cost_usd", Float),
    Column("peak", Boolean, nullable=False, default=False),
    Column("estimated", Boolean, nullable=False, default=False),
    Column("latency_ms", Float, nullable=False, default=0.0),
    Column("ttft_ms", Float),
    Column("api", String(32), nullable=False, server_default="openai.chat"),
    Index("ix_usage_ts", "ts"),
    Index("ix_usage_request_id", "request_id"),
    Index("ix_usage_key_ts", "key_id", "ts"),
    Index("ix_usage_team_ts", "team", "ts"),
    Index("ix_usage_model_ts", "model", "ts"),
    Index("ix_usage_provider_ts", "provider", "ts"),
    # failed calls only (revision 0009): the request log's status filters scan these, not
    # every row of the period; no entry (no writer cost) for the ~97% that succeed
    Index("ix_usage_failed_ts", "ts", postgresql_where=text("status <> 'ok'"),
          sqlite_where=text("status <> 'ok'")),
)

COLUMNS = tuple(c.name for c in usage.columns)

# Hourly rollups of `usage` (revision 0006): every report reads these, never the raw rows, so a
# report's cost grows with hours x dimension combinations, not with requests. One row per
# (hour, key, team, model, provider, api, thinking mode, status); "" stands for "none" (the
# master key, a refused call's provider) so the dimensions can be the primary key that an
# idempotent upsert needs. `failovers` counts calls that tried more than one target;
# `cache_savings_usd` is what cache-hit prompt tokens saved against the cache-miss price;
# `book_cost_usd` and `provider_cost_usd` sum the rows that had one (0 otherwise);
# `ttft_count` counts the rows that had a time to first token (streams).
ROLLUP_DIMENSIONS = ("key_id", "team", "model", "provider", "api", "thinking", "status")
ROLLUP_COUNTS = (
    "requests", "failovers", "prompt_tokens", "cache_hit_tokens", "cache_miss_tokens",
    "completion_tokens", "reasoning_tokens", "ttft_count",
)
ROLLUP_SUMS = (
    "cost_usd", "book_cost_usd", "provider_cost_usd", "cache_savings_usd",
    "latency_ms_sum", "ttft_ms_sum",
)
_DIMENSION_SIZES = {"key_id": 64, "team": 128, "model": 64, "provider": 64, "api": 32,
                    "thinking": 32, "status": 20}


def _rollup_columns() -> list[Column[Any]]:
    """The dimensions (part of the primary key) and the sums, fresh for each rollup table."""
    return [
        *(Column(name, String(_DIMENSION_SIZES[name]), primary_key=True, server_default="")
          for name in ROLLUP_DIMENSIONS),
        *(Column(name, BigInteger, nullable=False, server_default="0") for name in ROLLUP_COUNTS),
        *(Column(name, Float, nullable=False, server_default="0") for name in ROLLUP_SUMS),
    ]


usage_hourly = Table(
    "usage_hourly",
    metadata,
    Column("hour", DateTime(timezone=True), primary_key=True),
    *_rollup_columns(),
    Index("ix_usage_hourly_team_hour", "team", "hour"),
    Index("ix_usage_hourly_key_hour", "key_id", "hour"),
)

# The same sums per UTC day (revision 0007), kept beside the hourly ones by the writer and
# recomputed from them by a rebuild: a 90-day report reads ~90 x groups rows instead of
# ~2,160 x groups; hours at the edges of a range still come from usage_hourly.
usage_daily = Table(
    "usage_daily",
    metadata,
    Column("day", Date, primary_key=True),
    *_rollup_columns(),
    Index("ix_usage_daily_team_day", "team", "day"),
    Index("ix_usage_daily_key_day", "key_id", "day"),
)

# Latency histograms per hour (revision 0006): `metric` is "latency" (whole call) or "ttft"
# (time to first token); `bucket` is gateway.metering.buckets.bucket_of(ms); percentiles are
# read from the cumulative counts. Per team (revision 0010; "" for no team) so that a team's
# viewer key reads its own percentiles; the master key's sum over teams. Team comes second in
# the key: a team's range of hours is one index range with the team checked inside it.
LATENCY_DIMENSIONS = ("team", "provider", "model", "api", "metric", "bucket")


def _histogram_columns() -> list[Column[Any]]:
    """The histogram's dimensions after its time column (all in the primary key), and count."""
    return [
        Column("team", String(128), primary_key=True, server_default=""),
        Column("provider", String(64), primary_key=True, server_default=""),
        Column("model", String(64), primary_key=True, server_default=""),
        Column("api", String(32), primary_key=True, server_default=""),
        Column("metric", String(8), primary_key=True),
        Column("bucket", SmallInteger, primary_key=True, autoincrement=False),
        Column("count", BigInteger, nullable=False, server_default="0"),
    ]


usage_latency_hourly = Table(
    "usage_latency_hourly",
    metadata,
    Column("hour", DateTime(timezone=True), primary_key=True),
    *_histogram_columns(),
)

# The same histograms per UTC day (revision 0008), kept and rebuilt like usage_daily: a 90-day
# percentile reads ~90 x (team, provider, model, api) x buckets rows instead of 24 times that.
usage_latency_daily = Table(
    "usage_latency_daily",
    metadata,
    Column("day", Date, primary_key=True),
    *_histogram_columns(),
)

# Teams group keys under shared limits and budgets (see gateway/keys). `metadata` is free-form
# JSON for operators (cost centre, owner); the gateway never reads it.
teams = Table(
    "teams",
    metadata,
    Column("name", String(128), primary_key=True),
    Column("rpm", Integer),
    Column("tpm", Integer),
    Column("budget_usd", Float),
    Column("budget_period", String(8)),
    Column("metadata", JSON, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

# Virtual keys. Only the sha256 of a key is stored (`key_hash`, what authentication looks up)
# plus its first characters for display; revoked keys stay, with `revoked_at`, so usage rows
# keep pointing at something.
api_keys = Table(
    "api_keys",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("name", String(256), nullable=False),
    Column("key_hash", String(64), nullable=False, unique=True),
    Column("key_prefix", String(16), nullable=False),
    Column("team", String(128), ForeignKey("teams.name", name="fk_api_keys_team")),
    Column("allowed_models", JSON),
    Column("rpm", Integer),
    Column("tpm", Integer),
    Column("budget_usd", Float),
    Column("budget_period", String(8)),
    Column("expires_at", DateTime(timezone=True)),
    Column("metadata", JSON, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("revoked_at", DateTime(timezone=True)),
    Column("role", String(16), nullable=False, server_default="user"),
    Index("ix_api_keys_team", "team"),
)

# Stored responses of the OpenAI Responses surface (gateway/surfaces/openai_responses/store.py):
# the response object, this request's input items and the items before them (so
# previous_response_id is one read), under the gateway key that made it (`key_id`; None: the
# master key or a loopback client). Rows expire at `expires_at` and are pruned by that index.
responses = Table(
    "responses",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("key_id", String(64)),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("status", String(16), nullable=False),
    Column("model", String(128), nullable=False),
    Column("response", JSON, nullable=False),
    Column("input_items", JSON, nullable=False),
    Column("history", JSON, nullable=False),
    Index("ix_responses_expires_at", "expires_at"),
)
