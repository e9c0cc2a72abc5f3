"""What the admin API accepts for keys and teams: validated once, at the edge.

Updates are partial: only fields present in the body change, and `null` clears a limit, a
budget, an expiry, a model list or a key's team.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, TypeVar

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from gateway.errors import InvalidRequest
from gateway.keys.principal import Period, Role

TEAM_NAME = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"
# Limits are Postgres `integer` columns; budgets a float, finite and below any real spend.
INT_MAX = 2**31 - 1
BUDGET_MAX = 1e12
METADATA_MAX_BYTES = 16_384
# Expiry within the calendar Python and the database can both do arithmetic on.
EXPIRES_MAX = datetime(9000, 1, 1, tzinfo=UTC)


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid")


class KeyCreate(_Spec):
    name: str = Field(min_length=1, max_length=256)
    team: str | None = None
    models: list[str] | None = None
    rpm: int | None = Field(default=None, ge=1, le=INT_MAX)
    tpm: int | None = Field(default=None, ge=1, le=INT_MAX)
    budget_usd: float | None = Field(default=None, gt=0, le=BUDGET_MAX, allow_inf_nan=False)
    budget_period: Period = "month"
    expires_at: datetime | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    # A viewer key reads its team's usage and nothing else, so it needs a team.
    role: Role = "user"

    @model_validator(mode="after")
    def _viewer_has_team(self) -> KeyCreate:
        if self.role == "viewer" and self.team is None:
            raise ValueError("a viewer key needs a team (it sees that team's usage)")
        return self


class KeyUpdate(_Spec):
    name: str | None = Field(default=None, min_length=1, max_length=256)
    team: str | None = None
    models: list[str] | None = None
    rpm: int | None = Field(default=None, ge=1, le=INT_MAX)
    tpm: int | None = Field(default=None, ge=1, le=INT_MAX)
    budget_usd: float | None = Field(default=None, gt=0, le=BUDGET_MAX, allow_inf_nan=False)
    budget_period: Period | None = None
    expires_at: datetime | None = None
    metadata: dict[str, Any] | None = None


class TeamCreate(_Spec):
    name: str = Field(pattern=TEAM_NAME)
    rpm: int | None = Field(default=None, ge=1, le=INT_MAX)
    tpm: int | None = Field(default=None, ge=1, le=INT_MAX)
    budget_usd: float | None = Field(default=None, gt=0, le=BUDGET_MAX, allow_inf_nan=False)
    budget_period: Period = "month"
    metadata: dict[str, Any] = Field(default_factory=dict)


class TeamUpdate(_Spec):
    rpm: int | None = Field(default=None, ge=1, le=INT_MAX)
    tpm: int | None = Field(default=None, ge=1, le=INT_MAX)
    budget_usd: float | None = Field(default=None, gt=0, le=BUDGET_MAX, allow_inf_nan=False)
    budget_period: Period | None = None
    metadata: dict[str, Any] | None = None


NOT_NULL = frozenset({"name", "metadata"})
S = TypeVar("S", bound=_Spec)


def parse(spec: type[S], body: object) -> S:
    """The body as `spec`, or a 400 naming the first bad field."""
    if not isinstance(body, dict):
        raise InvalidRequest("The request body must be a JSON object.")
    for name in NOT_NULL & body.keys():
        if body[name] is None:
            raise InvalidRequest(f"{name} cannot be null.", param=name)
    for name, value in body.items():
        if _has_nul(value):
            raise InvalidRequest(f"{name}: text must not contain NUL characters", param=name)
    metadata = body.get("metadata")
    if metadata is not None and len(orjson.dumps(metadata)) > METADATA_MAX_BYTES:
        raise InvalidRequest(f"metadata: at most {METADATA_MAX_BYTES} bytes of JSON",
                             param="metadata")
    try:
        return spec.model_validate(body)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or None
        raise InvalidRequest(f"Invalid {where or 'body'}: {err['msg']}", param=where) from None


def _has_nul(value: object) -> bool:
    """Postgres text cannot hold NUL: a name, model or metadata value with one is bad input."""
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_nul(v) for v in value)
    return False


def changes(spec: BaseModel) -> dict[str, Any]:
    """The fields the body actually set (so null means 'clear', absence means 'keep')."""
    return {name: getattr(spec, name) for name in spec.model_fields_set}
