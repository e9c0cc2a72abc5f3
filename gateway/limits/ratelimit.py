"""Requests-per-minute and tokens-per-minute limits, for keys and for teams.

Fixed one-minute windows: exact (every process counts in the same Redis keys, and one Lua
script checks every limit of a request and counts it, atomically) and cheap (two integers per
limit and minute). A request is checked against all its limits at once (its key's and its
team's): it is admitted only if every one has room, and then it counts against all of them.
Tokens are only known when the answer ends, so they are charged afterwards; a limit whose token
budget for the minute is spent refuses new requests until the next minute.

Without Redis the same rules run in-process. While Redis is down (gateway/limits/redislink.py:
skipped, never waited on) each process goes on from the counts it last saw there, and lets
through only its share of what was left: `(limit - seen) / replicas`, the live replicas last
counted through Redis, so a key gets about its limit across the cluster, not one per process. When
Redis returns, what each process counted meanwhile is added to it, and the counter is lifted to
at least the count last seen plus every replica's share (a Redis restarted empty lost the
counts, and the other replicas may not be back yet), so the minute does not start over. A
Redis that restarted empty between two heartbeats was never seen down; a counter it answers
lower than this process last saw it is lifted back the same way (`_lift`).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from gateway.limits.redislink import FAILURES, RedisLink

log = logging.getLogger("gateway.limits")

WINDOW_SECONDS = 60
_PREFIX = "switchyard:rl:"

# KEYS: per limit, its request counter then its token counter (this window).
# ARGV: window ttl, then per limit: rpm, tpm (0 = no limit).
# Returns: {allowed (1/0), index of the refusing limit (1-based, 0 if none), kind
# (1 requests, 2 tokens), then per limit: requests used, tokens used}: the counts after this
# request when admitted, as they are when refused (a refusal is a count seen too: local
# counting after it must not start from an older one).
_ADMIT = """
local ttl = tonumber(ARGV[1])
local n = #KEYS / 2
local used = {}
local refused, kind = 0, 0
for i = 1, n do
  local req = tonumber(redis.call('GET', KEYS[2 * i - 1]) or '0')
  local tok = tonumber(redis.call('GET', KEYS[2 * i]) or '0')
  local rpm, tpm = tonumber(ARGV[2 * i]), tonumber(ARGV[2 * i + 1])
  if refused == 0 and rpm > 0 and req + 1 > rpm then refused, kind = i, 1 end
  if refused == 0 and tpm > 0 and tok >= tpm then refused, kind = i, 2 end
  used[2 * i - 1] = req
  used[2 * i] = tok
end
if refused == 0 then
  for i = 1, n do
    used[2 * i - 1] = redis.call('INCR', KEYS[2 * i - 1])
    redis.call('EXPIRE', KEYS[2 * i - 1], ttl)
  end
end
local out = {refused == 0 and 1 or 0, refused, kind}
for i = 1, #used do out[#out + 1] = used[i] end
return out
"""

# What a process counted while Redis was away, added back when it returns. KEYS: counters.
# ARGV: ttl, then per counter: what this process added meanwhile, the least the counter can
# be (the count last seen there plus every replica's share of that; a Redis restarted empty
# has lost the rest, and the other replicas may not have put theirs back yet).
_RESTORE = """
for i = 1, #KEYS do
  local v = redis.call('INCRBY', KEYS[i], ARGV[2 * i])
  if v < tonumber(ARGV[2 * i + 1]) then redis.call('SET', KEYS[i], ARGV[2 * i + 1]) end
  redis.call('EXPIRE', KEYS[i], ARGV[1])
end
return 1
"""


@dataclass(frozen=True, slots=True)
class Limit:
    """One subject's limits, e.g. `Limit("key:3f2a", rpm=60, tpm=100_000)`; None = unlimited."""

    subject: str
    rpm: int | None = None
    tpm: int | None = None


@dataclass(slots=True)
class Decision:
    allowed: bool
    headers: dict[str, str]
    retry_after: float = 0.0
    refused_by: Limit | None = None
    refused_kind: str | None = None  # "requests" or "tokens"


class RateLimiter:
    """Checks and counts requests; charges tokens. Redis when given a URL, else in-process."""

    def __init__(self, redis_url: str | RedisLink | None,
                 clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._owns_link = isinstance(redis_url, str)
        self._link = RedisLink(redis_url) if isinstance(redis_url, str) else redis_url
        self._admit_script = (self._link.client.register_script(_ADMIT)
                              if self._link is not None else None)
        self._restore_script = (self._link.client.register_script(_RESTORE)
                                if self._link is not None else None)
        self._local: dict[str, int] = {}
        self._local_window = -1
        # The last counts Redis reported this window: where local counting starts from.
        self._seen: dict[str, int] = {}
        self._away = False  # counted in-process since Redis last answered: restore first
        self._lost_logged = -1  # the window whose lost counters were last logged

    async def close(self) -> None:
        if self._link is not None and self._owns_link:
            await self._link.close()

    @property
    def _redis_up(self) -> bool:
        return self._link is not None and self._link.usable

    async def admit(self, limits: Sequence[Limit]) -> Decision:
        """Admit and count one request against every limit, or refuse it."""
        active = [lim for lim in limits if lim.rpm or lim.tpm]
        if not active:
            return Decision(True, {})
        now = self._clock()
        window = int(now // WINDOW_SECONDS)
        reset = (window + 1) * WINDOW_SECONDS - now
        result = await self._admit_redis(active, window) if self._redis_up else None
        if result is None:
            result = self._admit_local(active, window)
        allowed, index, kind, used = result
        if not allowed:
            refused = active[index - 1]
            what = "requests" if kind == 1 else "tokens"
            limit = refused.rpm if kind == 1 else refused.tpm
            headers = {
                f"x-ratelimit-limit-{what}": str(limit),
                f"x-ratelimit-remaining-{what}": "0",
                f"x-ratelimit-reset-{what}": f"{math.ceil(reset)}s",
            }
            return Decision(False, headers, retry_after=reset, refused_by=refused,
                            refused_kind=what)
        return Decision(True, _headers(active, used, reset))

    async def charge_tokens(self, limits: Sequence[Limit], tokens: int) -> None:
        """Count an answer's tokens against the limits that have a token budget."""
        active = [lim for lim in limits if lim.tpm]
        if not active or tokens <= 0:
            return
        window = int(self._clock() // WINDOW_SECONDS)
        if self._link is not None and self._link.up:
            try:
                async with self._link.client.pipeline(transaction=True) as pipe:
                    for lim in active:
                        key = _key(lim, "tok", window)
                        pipe.incrby(key, tokens)
                        pipe.expire(key, 2 * WINDOW_SECONDS)
                    await pipe.execute()
                return
            except FAILURES as exc:
                self._link.failed(exc, "charging tokens")
        self._roll_local(window)
        self._away = True
        for lim in active:
            name = _key(lim, "tok", window)
            self._local[name] = self._local.get(name, self._seen.get(name, 0)) + tokens

    async def _admit_redis(
        self, limits: list[Limit], window: int
    ) -> tuple[bool, int, int, list[int]] | None:
        assert self._admit_script is not None and self._link is not None
        keys: list[str] = []
        args: list[int] = [2 * WINDOW_SECONDS]
        for lim in limits:
            keys += [_key(lim, "req", window), _key(lim, "tok", window)]
            args += [lim.rpm or 0, lim.tpm or 0]
        try:
            async with self._link.deadline():
                self._roll_local(window)
                if self._away:
                    await self._restore()
                raw = await self._admit_script(keys=keys, args=args)
        except FAILURES as exc:
            self._link.failed(exc, "checking rate limits")
            return None
        values = [int(v) for v in raw]
        used = values[3:]
        self._roll_local(window)
        self._local.clear()  # Redis is the count again; local counting restarts from it
        lost = [i for i, (name, count) in enumerate(zip(keys, used, strict=True))
                if count < self._seen.get(name, 0)]
        if lost:
            used = await self._lift(keys, used, lost, window)
        for name, count in zip(keys, used, strict=True):
            self._seen[name] = count  # refused too: once only admits updated it, a process
            # whose requests Redis refused went local from an older count and admitted
            # again what the others had used (156 of rpm 120 in a minute, under load)
        return bool(values[0]), values[1], values[2], used

    async def _lift(self, keys: list[str], used: list[int], lost: list[int],
                    window: int) -> list[int]:
        """Counters lower than this process last saw them this window: Redis lost them (it
        restarted empty, or was flushed, between two heartbeats, so it never looked down).
        Without this the minute started over and a key got up to twice its limit. Each lost
        counter is lifted to at least what was seen plus what was counted since the loss;
        every process does the same on its next request, and the highest stands."""
        assert self._restore_script is not None and self._link is not None
        names = [keys[i] for i in lost]
        lifted = list(used)
        args: list[int] = [2 * WINDOW_SECONDS]
        for i in lost:
            lifted[i] = self._seen[keys[i]] + used[i]
            args += [0, lifted[i]]
        if self._lost_logged != window:  # once a minute, not once per key
            self._lost_logged = window
            log.warning("Redis lost rate-limit counters of this minute (restarted or flushed "
                        "between heartbeats); they carry on from the counts last seen")
        try:
            async with self._link.deadline():
                await self._restore_script(keys=names, args=args)
        except FAILURES as exc:
            self._link.failed(exc, "restoring rate-limit counters")
        return lifted

    async def _restore(self) -> None:
        """Redis is back: add what was counted here meanwhile to this window's counters, and
        lift them to at least the counts last seen plus what every replica may have counted
        meanwhile: the others may not be back yet (each finds Redis on its own probe), so a
        replica back first must not hand out their shares again. Until the last one is back
        the count errs high (the limit holds; the minute's rest may admit a little less)."""
        assert self._restore_script is not None and self._link is not None
        names = sorted(set(self._seen) | set(self._local))
        args: list[int] = [2 * WINDOW_SECONDS]
        share = self._link.replicas
        for name in names:
            seen = self._seen.get(name, 0)
            counted = self._local.get(name, seen)
            args += [counted - seen, seen + (counted - seen) * share]
        if names:
            await self._restore_script(keys=names, args=args)
        self._seen.update(self._local)
        self._local.clear()
        self._away = False

    def _admit_local(
        self, limits: list[Limit], window: int
    ) -> tuple[bool, int, int, list[int]]:
        self._roll_local(window)
        self._away = self._link is not None
        # With Redis away, this process gets its share of what was left when it went.
        share = self._link.replicas if self._link is not None else 1
        used: list[int] = []
        for i, lim in enumerate(limits, start=1):
            req_name, tok_name = _key(lim, "req", window), _key(lim, "tok", window)
            req_seen, tok_seen = self._seen.get(req_name, 0), self._seen.get(tok_name, 0)
            req = self._local.get(req_name, req_seen)
            tok = self._local.get(tok_name, tok_seen)
            if lim.rpm and req_seen + (req + 1 - req_seen) * share > lim.rpm:
                return False, i, 1, []
            if lim.tpm and tok_seen + (tok - tok_seen) * share >= lim.tpm:
                return False, i, 2, []
            used += [req + 1, tok]
        for lim in limits:
            name = _key(lim, "req", window)
            self._local[name] = self._local.get(name, self._seen.get(name, 0)) + 1
        return True, 0, 0, used

    def _roll_local(self, window: int) -> None:
        if window != self._local_window:
            self._local.clear()
            self._seen.clear()
            self._local_window = window


def _key(limit: Limit, kind: str, window: int) -> str:
    return f"{_PREFIX}{limit.subject}:{kind}:{window}"


def _headers(limits: list[Limit], used: list[int], reset: float) -> dict[str, str]:
    """OpenAI's x-ratelimit-* headers, for the tightest request and token limits."""
    if not used:
        return {}
    reset_text = f"{math.ceil(reset)}s"
    out: dict[str, str] = {}
    request_room = [
        (lim.rpm, lim.rpm - used[2 * i]) for i, lim in enumerate(limits) if lim.rpm
    ]
    token_room = [
        (lim.tpm, lim.tpm - used[2 * i + 1]) for i, lim in enumerate(limits) if lim.tpm
    ]
    if request_room:
        limit, remaining = min(request_room, key=lambda pair: pair[1])
        out["x-ratelimit-limit-requests"] = str(limit)
        out["x-ratelimit-remaining-requests"] = str(max(0, remaining))
        out["x-ratelimit-reset-requests"] = reset_text
    if token_room:
        limit, remaining = min(token_room, key=lambda pair: pair[1])
        out["x-ratelimit-limit-tokens"] = str(limit)
        out["x-ratelimit-remaining-tokens"] = str(max(0, remaining))
        out["x-ratelimit-reset-tokens"] = reset_text
    return out
