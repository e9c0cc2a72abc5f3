"""The authentication cache: key hash -> what that key is, for a short while.

The hot path never queries the database for a cached key. Entries live `ttl` seconds (long
while revocations arrive through Redis, short without) and unknown or revoked keys are cached
too, so a flood of bad keys does not become a flood of queries. A generation counter, bumped
by every invalidation, keeps a lookup that raced with a revocation from caching what it read.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from gateway.keys.principal import Principal


@dataclass(frozen=True, slots=True)
class Entry:
    principal: Principal | None        # None: no such key, or revoked
    expires_ts: float | None           # the key's own expiry (epoch s), checked every request
    stale_at: float                    # monotonic time after which the entry is looked up again
    known_at: float = 0.0              # monotonic time of the lookup it came from (bounds
                                       # how long it is served while the database is away)

    @property
    def valid(self) -> bool:
        return self.principal is not None


class PrincipalCache:
    def __init__(self, max_entries: int = 100_000) -> None:
        self._entries: dict[str, Entry] = {}
        self._max = max_entries
        self.generation = 0

    def get(self, key_hash: str) -> Entry | None:
        return self._entries.get(key_hash)

    def put(self, key_hash: str, entry: Entry, now: float) -> None:
        if len(self._entries) >= self._max and key_hash not in self._entries:
            self._evict(now)
        self._entries[key_hash] = entry

    def drop(self, key_hash: str) -> None:
        self.generation += 1
        self._entries.pop(key_hash, None)

    def drop_team(self, team: str) -> None:
        self.generation += 1
        for key_hash in [h for h, e in self._entries.items()
                         if e.principal is not None and e.principal.team == team]:
            del self._entries[key_hash]

    def expire_within(self, ttl: float, not_before: float) -> None:
        """Every entry falls due `ttl` after its lookup, but not before `not_before`. (No
        new generation: lookups in flight may still store what they read.)"""
        for key_hash, entry in self._entries.items():
            due = max(entry.known_at + ttl, not_before)
            if due < entry.stale_at:
                self._entries[key_hash] = replace(entry, stale_at=due)

    def clear(self) -> None:
        self.generation += 1
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)

    def _evict(self, now: float) -> None:
        """Stale entries first; if the cache is still full (a flood of distinct bad keys),
        the oldest half goes."""
        for key_hash in [h for h, e in self._entries.items() if e.stale_at <= now]:
            del self._entries[key_hash]
        if len(self._entries) >= self._max:
            for key_hash in list(self._entries)[: max(1, len(self._entries) // 2)]:
                del self._entries[key_hash]
