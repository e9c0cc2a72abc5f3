"""Keys and teams in the database (Postgres or SQLite, the same Core statements on both).

Shares the usage store's engines and its migrations: one database, one schema version. Only
admin operations (its writes engine) and authentication cache misses (its request-path engine,
with short timeouts) come here, never a request that is cached.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Row, func, select, update
from sqlalchemy.exc import IntegrityError

from gateway.db.store import UsageStore
from gateway.db.tables import api_keys, teams
from gateway.keys.records import KeyRecord, TeamRecord, period, role, utc


class Conflict(Exception):
    """A unique name is taken (a team), or a row still refers to what is being deleted."""


class KeyStore:
    def __init__(self, store: UsageStore) -> None:
        self._store = store

    async def lookup(self, key_hash: str) -> tuple[KeyRecord, TeamRecord | None] | None:
        """The key with this hash and its team (revoked keys included: the caller decides)."""
        await self._store.prepare()
        async with self._store.request_path.connect() as conn:
            row = (await conn.execute(
                select(api_keys).where(api_keys.c.key_hash == key_hash))).first()
            if row is None:
                return None
            key = _key(row)
            team = None
            if key.team is not None:
                team_row = (await conn.execute(
                    select(teams).where(teams.c.name == key.team))).first()
                team = _team(team_row) if team_row is not None else None
        return key, team

    # ---- keys ------------------------------------------------------------------------------

    async def insert_key(self, key: KeyRecord) -> None:
        await self._store.prepare()
        values = {
            "id": key.id, "name": key.name, "key_hash": key.key_hash,
            "key_prefix": key.key_prefix, "team": key.team,
            "allowed_models": list(key.allowed_models) if key.allowed_models is not None
            else None,
            "rpm": key.rpm, "tpm": key.tpm, "budget_usd": key.budget_usd,
            "budget_period": key.budget_period, "expires_at": key.expires_at,
            "metadata": key.metadata, "created_at": key.created_at, "revoked_at": None,
            "role": key.role,
        }
        async with self._store.engine.begin() as conn:
            await conn.execute(api_keys.insert().values(**values))

    async def get_key(self, key_id: str) -> KeyRecord | None:
        await self._store.prepare()
        async with self._store.engine.connect() as conn:
            row = (await conn.execute(select(api_keys).where(api_keys.c.id == key_id))).first()
        return _key(row) if row is not None else None

    async def list_keys(self, *, include_revoked: bool = False,
                        team: str | None = None) -> list[KeyRecord]:
        await self._store.prepare()
        query = select(api_keys).order_by(api_keys.c.created_at, api_keys.c.id)
        if not include_revoked:
            query = query.where(api_keys.c.revoked_at.is_(None))
        if team is not None:
            query = query.where(api_keys.c.team == team)
        async with self._store.engine.connect() as conn:
            return [_key(row) for row in await conn.execute(query)]

    async def update_key(self, key_id: str, values: dict[str, Any]) -> KeyRecord | None:
        """Apply `values` (column -> value) to a key that is not revoked."""
        await self._store.prepare()
        async with self._store.engine.begin() as conn:
            if values:
                await conn.execute(update(api_keys).where(
                    api_keys.c.id == key_id, api_keys.c.revoked_at.is_(None)).values(**values))
            row = (await conn.execute(select(api_keys).where(api_keys.c.id == key_id))).first()
        return _key(row) if row is not None else None

    async def revoke_key(self, key_id: str, now: datetime) -> KeyRecord | None:
        await self._store.prepare()
        async with self._store.engine.begin() as conn:
            await conn.execute(update(api_keys).where(
                api_keys.c.id == key_id, api_keys.c.revoked_at.is_(None)).values(revoked_at=now))
            row = (await conn.execute(select(api_keys).where(api_keys.c.id == key_id))).first()
        return _key(row) if row is not None else None

    # ---- teams -----------------------------------------------------------------------------

    async def insert_team(self, team: TeamRecord) -> None:
        await self._store.prepare()
        try:
            async with self._store.engine.begin() as conn:
                await conn.execute(teams.insert().values(
                    name=team.name, rpm=team.rpm, tpm=team.tpm, budget_usd=team.budget_usd,
                    budget_period=team.budget_period, metadata=team.metadata,
                    created_at=team.created_at))
        except IntegrityError:
            raise Conflict(f"A team named '{team.name}' already exists.") from None

    async def get_team(self, name: str) -> TeamRecord | None:
        await self._store.prepare()
        async with self._store.engine.connect() as conn:
            row = (await conn.execute(select(teams).where(teams.c.name == name))).first()
        return _team(row) if row is not None else None

    async def list_teams(self) -> list[TeamRecord]:
        await self._store.prepare()
        async with self._store.engine.connect() as conn:
            return [_team(row) for row in await conn.execute(
                select(teams).order_by(teams.c.name))]

    async def update_team(self, name: str, values: dict[str, Any]) -> TeamRecord | None:
        await self._store.prepare()
        async with self._store.engine.begin() as conn:
            if values:
                await conn.execute(update(teams).where(teams.c.name == name).values(**values))
            row = (await conn.execute(select(teams).where(teams.c.name == name))).first()
        return _team(row) if row is not None else None

    async def delete_team(self, name: str) -> bool:
        """Refused while live keys belong to the team; its revoked keys lose the reference."""
        await self._store.prepare()
        async with self._store.engine.begin() as conn:
            live = await conn.scalar(select(func.count()).select_from(api_keys).where(
                api_keys.c.team == name, api_keys.c.revoked_at.is_(None)))
            if live:
                raise Conflict(
                    f"Team '{name}' still has {live} active key(s); revoke or move them first.")
            await conn.execute(update(api_keys).where(api_keys.c.team == name).values(team=None))
            result = await conn.execute(teams.delete().where(teams.c.name == name))
        return bool(result.rowcount)


def _key(row: Row[Any]) -> KeyRecord:
    m = row._mapping
    models = m["allowed_models"]
    return KeyRecord(
        id=m["id"], name=m["name"], key_hash=m["key_hash"], key_prefix=m["key_prefix"],
        team=m["team"], allowed_models=tuple(models) if models is not None else None,
        rpm=m["rpm"], tpm=m["tpm"], budget_usd=m["budget_usd"],
        budget_period=period(m["budget_period"]), expires_at=utc(m["expires_at"]),
        metadata=dict(m["metadata"] or {}), created_at=utc(m["created_at"]),
        revoked_at=utc(m["revoked_at"]), role=role(m["role"]),
    )


def _team(row: Row[Any]) -> TeamRecord:
    m = row._mapping
    return TeamRecord(
        name=m["name"], rpm=m["rpm"], tpm=m["tpm"], budget_usd=m["budget_usd"],
        budget_period=period(m["budget_period"]), metadata=dict(m["metadata"] or {}),
        created_at=utc(m["created_at"]),
    )
