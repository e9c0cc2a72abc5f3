"""What the hot path knows about a caller once authenticated.

Authentication turns a bearer token into a `Principal`; everything after it (model allow-lists,
rate limits, budgets, usage attribution) reads only this value, never the database.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from gateway.limits.ratelimit import Limit

Period = Literal["day", "month"]
# "user" keys call models; "viewer" keys only read their own team's usage (reports, /ui).
Role = Literal["user", "viewer"]
ROLES: tuple[Role, ...] = ("user", "viewer")


@dataclass(frozen=True, slots=True)
class Budget:
    """A spending cap in USD for one subject (`key:<id>` or `team:<name>`) per calendar
    period (UTC)."""

    subject: str
    usd: float
    period: Period


@dataclass(frozen=True, slots=True)
class Principal:
    key_id: str | None = None          # None: the master key, or a loopback client with no key
    key_name: str | None = None
    team: str | None = None
    is_admin: bool = False
    allowed_models: frozenset[str] | None = None   # canonical names; None: every model
    limits: tuple[Limit, ...] = field(default_factory=tuple)
    budgets: tuple[Budget, ...] = field(default_factory=tuple)
    role: Role = "user"

    def may_use(self, canonical_model: str) -> bool:
        return self.allowed_models is None or canonical_model in self.allowed_models


MASTER = Principal(is_admin=True)
