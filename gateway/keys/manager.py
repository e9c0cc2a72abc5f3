"""Key and team administration: validate, write, then make every process forget what changed.

Every write ends with `announce` (drop the local cache entry and publish the change on Redis),
so an update or revocation takes effect everywhere at once rather than when caches expire.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from gateway.errors import GatewayError, InvalidRequest, NotFound
from gateway.keys import tokens
from gateway.keys.events import TEAM_PREFIX
from gateway.keys.records import KeyRecord, TeamRecord
from gateway.keys.specs import (
    EXPIRES_MAX,
    KeyCreate,
    KeyUpdate,
    TeamCreate,
    TeamUpdate,
    changes,
)
from gateway.keys.store import Conflict, KeyStore
from gateway.models import ModelCatalogue

Announce = Callable[[str], Awaitable[None]]


class KeyManager:
    def __init__(self, store: KeyStore, catalogue: ModelCatalogue, announce: Announce,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.store = store
        self._catalogue = catalogue
        self._announce = announce
        self._now = clock

    # ---- keys ------------------------------------------------------------------------------

    async def create_key(self, spec: KeyCreate) -> tuple[KeyRecord, str]:
        """The new key's record and the key itself, which exists nowhere else afterwards."""
        if spec.team is not None:
            await self._team_must_exist(spec.team)
        now = self._now()
        raw = tokens.mint()
        record = KeyRecord(
            id=tokens.new_key_id(), name=spec.name, key_hash=tokens.hash_key(raw),
            key_prefix=tokens.display_prefix(raw), team=spec.team,
            allowed_models=self._canonical(spec.models), rpm=spec.rpm, tpm=spec.tpm,
            budget_usd=spec.budget_usd, budget_period=spec.budget_period,
            expires_at=self._expiry(spec.expires_at, now), metadata=spec.metadata,
            created_at=now, role=spec.role,
        )
        await self.store.insert_key(record)
        return record, raw

    async def list_keys(self, *, include_revoked: bool = False,
                        team: str | None = None) -> list[KeyRecord]:
        return await self.store.list_keys(include_revoked=include_revoked, team=team)

    async def get_key(self, key_id: str) -> KeyRecord:
        record = await self.store.get_key(key_id)
        if record is None:
            raise NotFound(f"No key with id '{key_id}'.", code="key_not_found")
        return record

    async def update_key(self, key_id: str, spec: KeyUpdate) -> KeyRecord:
        current = await self.get_key(key_id)
        if current.revoked_at is not None:
            raise InvalidRequest(f"Key '{key_id}' is revoked and cannot be changed.",
                                 status=409, code="key_revoked")
        values: dict[str, Any] = changes(spec)
        if current.role == "viewer" and "team" in values and values["team"] is None:
            raise InvalidRequest("A viewer key needs a team (it sees that team's usage).",
                                 param="team")
        if "models" in values:
            values["allowed_models"] = (
                list(m) if (m := self._canonical(values.pop("models"))) is not None else None)
        if values.get("team") is not None:
            await self._team_must_exist(values["team"])
        if "expires_at" in values:
            values["expires_at"] = self._expiry(values["expires_at"], self._now())
        updated = await self.store.update_key(key_id, values)
        assert updated is not None
        await self._announce(current.key_hash)
        return updated

    async def revoke_key(self, key_id: str) -> KeyRecord:
        current = await self.get_key(key_id)
        revoked = await self.store.revoke_key(key_id, self._now())
        assert revoked is not None
        await self._announce(current.key_hash)
        return revoked

    # ---- teams -----------------------------------------------------------------------------

    async def create_team(self, spec: TeamCreate) -> TeamRecord:
        record = TeamRecord(name=spec.name, rpm=spec.rpm, tpm=spec.tpm,
                            budget_usd=spec.budget_usd, budget_period=spec.budget_period,
                            metadata=spec.metadata, created_at=self._now())
        try:
            await self.store.insert_team(record)
        except Conflict as exc:
            raise InvalidRequest(str(exc), status=409, code="team_exists",
                                 param="name") from None
        return record

    async def list_teams(self) -> list[TeamRecord]:
        return await self.store.list_teams()

    async def get_team(self, name: str) -> TeamRecord:
        record = await self.store.get_team(name)
        if record is None:
            raise NotFound(f"No team named '{name}'.", code="team_not_found")
        return record

    async def update_team(self, name: str, spec: TeamUpdate) -> TeamRecord:
        await self.get_team(name)
        updated = await self.store.update_team(name, changes(spec))
        assert updated is not None
        await self._announce(TEAM_PREFIX + name)
        return updated

    async def delete_team(self, name: str) -> TeamRecord:
        record = await self.get_team(name)
        try:
            await self.store.delete_team(name)
        except Conflict as exc:
            raise InvalidRequest(str(exc), status=409, code="team_has_keys") from None
        await self._announce(TEAM_PREFIX + name)
        return record

    # ---- checks ----------------------------------------------------------------------------

    def _canonical(self, models: list[str] | None) -> tuple[str, ...] | None:
        """Names as the client may send them (aliases included) -> canonical names, which is
        what admission compares against."""
        if models is None:
            return None
        out: list[str] = []
        for name in models:
            try:
                canonical = self._catalogue.resolve(name).canonical
            except GatewayError:
                known = ", ".join(self._catalogue.names())
                raise InvalidRequest(f"Unknown model '{name}'. Known models: {known}.",
                                     param="models", code="model_not_found") from None
            if canonical not in out:
                out.append(canonical)
        return tuple(out)

    async def _team_must_exist(self, name: str) -> None:
        if await self.store.get_team(name) is None:
            raise InvalidRequest(f"No team named '{name}'; create it first.", param="team",
                                 code="team_not_found")

    @staticmethod
    def _expiry(value: datetime | None, now: datetime) -> datetime | None:
        if value is None:
            return None
        value = value if value.tzinfo else value.replace(tzinfo=UTC)
        try:
            value = value.astimezone(UTC)
        except OverflowError:  # a time near the calendar's ends, with an offset
            raise InvalidRequest("expires_at: outside the supported range",
                                 param="expires_at") from None
        if value <= now:
            raise InvalidRequest("expires_at must be in the future.", param="expires_at")
        if value >= EXPIRES_MAX:
            raise InvalidRequest(f"expires_at: must be before {EXPIRES_MAX.date()}",
                                 param="expires_at")
        return value
