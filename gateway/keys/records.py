"""Keys and teams as stored, and the Principal a key stands for.

Records are plain values read from the database; `principal_for` turns a key and its team into
the one immutable value the hot path uses, so nothing after authentication touches storage.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, cast

from gateway.keys.principal import Budget, Period, Principal, Role
from gateway.limits.ratelimit import Limit


@dataclass(frozen=True, slots=True)
class TeamRecord:
    name: str
    rpm: int | None = None
    tpm: int | None = None
    budget_usd: float | None = None
    budget_period: Period | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    created_at: datetime | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "object": "team",
            "name": self.name,
            "rpm": self.rpm,
            "tpm": self.tpm,
            "budget_usd": self.budget_usd,
            "budget_period": self.budget_period,
            "metadata": self.metadata,
            "created_at": _iso(self.created_at),
        }


@dataclass(frozen=True, slots=True)
class KeyRecord:
    """A key without its secret: `key_hash` is what lookups match, `key_prefix` is for people."""

    id: str
    name: str
    key_hash: str
    key_prefix: str
    team: str | None = None
    allowed_models: tuple[str, ...] | None = None
    rpm: int | None = None
    tpm: int | None = None
    budget_usd: float | None = None
    budget_period: Period | None = None
    expires_at: datetime | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    created_at: datetime | None = None
    revoked_at: datetime | None = None
    role: Role = "user"

    def expired(self, now: datetime) -> bool:
        return self.expires_at is not None and now >= self.expires_at

    def to_json(self) -> dict[str, Any]:
        """The admin API's view: never the hash, never the key."""
        return {
            "object": "api_key",
            "id": self.id,
            "name": self.name,
            "key_prefix": self.key_prefix,
            "team": self.team,
            "models": list(self.allowed_models) if self.allowed_models is not None else None,
            "rpm": self.rpm,
            "tpm": self.tpm,
            "budget_usd": self.budget_usd,
            "budget_period": self.budget_period,
            "expires_at": _iso(self.expires_at),
            "metadata": self.metadata,
            "created_at": _iso(self.created_at),
            "revoked_at": _iso(self.revoked_at),
            "role": self.role,
        }


def principal_for(key: KeyRecord, team: TeamRecord | None) -> Principal:
    """What a key may do: its own limits and budget, and its team's, which every key of the
    team shares (same subject, so the limiter and budget tracker count them together)."""
    limits: list[Limit] = []
    budgets: list[Budget] = []
    if key.rpm or key.tpm:
        limits.append(Limit(f"key:{key.id}", key.rpm, key.tpm))
    if key.budget_usd is not None:
        budgets.append(Budget(f"key:{key.id}", key.budget_usd, key.budget_period or "month"))
    if team is not None:
        if team.rpm or team.tpm:
            limits.append(Limit(f"team:{team.name}", team.rpm, team.tpm))
        if team.budget_usd is not None:
            budgets.append(
                Budget(f"team:{team.name}", team.budget_usd, team.budget_period or "month"))
    return Principal(
        key_id=key.id,
        key_name=key.name,
        team=key.team,
        is_admin=False,
        allowed_models=(
            frozenset(key.allowed_models) if key.allowed_models is not None else None),
        limits=tuple(limits),
        budgets=tuple(budgets),
        role=key.role,
    )


def utc(value: datetime | None) -> datetime | None:
    """Timestamps from SQLite come back naive; everything stored is UTC."""
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def role(value: str | None) -> Role:
    """Anything but a known role reads as "user" (the column's default)."""
    return "viewer" if value == "viewer" else "user"


def period(value: str | None) -> Period | None:
    return cast(Period, value) if value in ("day", "month") else None


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None
