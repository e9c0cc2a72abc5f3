"""Breakers shared by every gateway process and replica, through Redis.

Each process keeps its own `HealthBoard` (no Redis call on the hot path). Every `interval`
seconds a background task pushes the outcomes it saw since the last sync into Redis, where one
atomic Lua script per target merges them into the cluster's breaker (consecutive failures,
a bucketed failure-ratio window, open/closed, Retry-After cooldown), and pulls back the state of
every target. The single half-open probe is claimed cluster-wide with `SET NX PX`.

It talks to Redis through the process's one link (gateway/limits/redislink.py): while the link
has Redis down, syncs are skipped and the process carries on with its in-process board (the
link logs once when Redis goes and once when it returns), and resyncs when it is back. A
request never fails or waits because of Redis.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable

from gateway.limits.redislink import FAILURES, RedisLink
from gateway.routing.health import HealthBoard
from gateway.tasks import stop

log = logging.getLogger("gateway.health")

_PREFIX = "switchyard:breaker:"

# KEYS: state hash, window hash. ARGV: now, ok, failed, trailing_failures, had_success,
# cooldown_until, trip_until, consecutive_threshold, failure_ratio, window, min_requests,
# cooldown. Returns {state, opened_until, cooldown_until} as strings (Lua numbers would be
# truncated to integers).
_MERGE = """
local now = tonumber(ARGV[1])
local ok, failed = tonumber(ARGV[2]), tonumber(ARGV[3])
local trailing, had_success = tonumber(ARGV[4]), tonumber(ARGV[5])
local cooldown_in, trip_until = tonumber(ARGV[6]), tonumber(ARGV[7])
local threshold, ratio = tonumber(ARGV[8]), tonumber(ARGV[9])
local window, min_requests, cooldown = tonumber(ARGV[10]), tonumber(ARGV[11]), tonumber(ARGV[12])
local h, w = KEYS[1], KEYS[2]
local state = redis.call('HGET', h, 'state') or 'closed'
local opened_until = tonumber(redis.call('HGET', h, 'opened_until') or '0')
local cooldown_until = tonumber(redis.call('HGET', h, 'cooldown_until') or '0')
local consecutive = tonumber(redis.call('HGET', h, 'consecutive') or '0')

local bucket_len = window / 10
local bucket = math.floor(now / bucket_len)
if ok > 0 then redis.call('HINCRBY', w, 'o' .. bucket, ok) end
if failed > 0 then redis.call('HINCRBY', w, 'f' .. bucket, failed) end
local total_ok, total_failed = 0, 0
local fields = redis.call('HGETALL', w)
for i = 1, #fields, 2 do
  local id = tonumber(string.sub(fields[i], 2))
  if id <= bucket - 10 then
    redis.call('HDEL', w, fields[i])
  elseif string.sub(fields[i], 1, 1) == 'o' then
    total_ok = total_ok + tonumber(fields[i + 1])
  else
    total_failed = total_failed + tonumber(fields[i + 1])
  end
end

if had_success == 1 then consecutive = trailing else consecutive = consecutive + failed end

local probing = state == 'half_open' or (state == 'open' and now >= opened_until)
if probing then
  if had_success == 1 and trailing == 0 then
    state = 'closed'; consecutive = 0; redis.call('DEL', w)
  elseif failed > 0 then
    state = 'open'; opened_until = now + cooldown
  end
elseif state == 'closed' then
  local total = total_ok + total_failed
  if consecutive >= threshold or (total >= min_requests and total_failed / total >= ratio) then
    state = 'open'; opened_until = now + cooldown; redis.call('DEL', w)
  end
end
if trip_until > opened_until then state = 'open'; opened_until = trip_until end
if cooldown_in > cooldown_until then cooldown_until = cooldown_in end
redis.call('HSET', h, 'state', state, 'opened_until', tostring(opened_until),
           'cooldown_until', tostring(cooldown_until), 'consecutive', consecutive)
redis.call('EXPIRE', h, 86400)
redis.call('EXPIRE', w, math.ceil(window * 2))
return {state, tostring(opened_until), tostring(cooldown_until)}
"""


class SharedHealth:
    """Keeps a `HealthBoard` in agreement with the cluster's breakers in Redis."""

    def __init__(
        self, board: HealthBoard, link: str | RedisLink, keys: Iterable[str],
        interval: float = 0.25
    ) -> None:
        self._board = board
        self._keys = sorted(set(keys))
        self._interval = interval
        self._owns_link = isinstance(link, str)  # a URL: tests and tools
        self._link = RedisLink(link) if isinstance(link, str) else link
        self._merge = self._link.client.register_script(_MERGE)
        self._task: asyncio.Task[None] | None = None
        self.connected: bool | None = None  # None until the first sync
        board.probe_gate = self._claim_probe

    async def start(self) -> None:
        await self.sync()
        self._task = asyncio.create_task(self._run(), name="shared-health")

    async def close(self) -> None:
        await stop(self._task)
        await self.sync()
        if self._owns_link:
            await self._link.close()

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            await self.sync()

    async def sync(self) -> None:
        """Push local outcomes, pull the cluster's state. Never raises."""
        if not self._link.up:  # known down: skipped, the link's probe watches for its return
            self.connected = False  # outcomes stay on the board until Redis is back
            return
        deltas = self._board.drain_deltas()
        config = self._board.config
        now = self._board_clock()
        redis = self._link.client
        try:
            for key, d in list(deltas.items()):
                state, opened, cooled = await self._merge(
                    keys=[_PREFIX + key, _PREFIX + key + ":window"],
                    args=[now, d.ok, d.failed, d.trailing_failures, int(d.had_success),
                          d.cooldown_until, d.trip_until, config.consecutive_failures,
                          config.failure_ratio, config.window, config.min_requests,
                          config.cooldown],
                )
                del deltas[key]  # pushed
                self._board.adopt(key, _text(state), float(opened), float(cooled))
            async with redis.pipeline(transaction=False) as pipe:
                for key in self._keys:
                    pipe.hmget(_PREFIX + key, "state", "opened_until", "cooldown_until")
                rows = await pipe.execute()
        except FAILURES as exc:
            self._board.restore_deltas(deltas)  # what was not pushed goes next time
            self._link.failed(exc, "syncing shared breakers")  # logged once, by the link
            self.connected = False
            return
        self.connected = True
        for key, (state, opened, cooled) in zip(self._keys, rows, strict=True):
            if state is not None:
                self._board.adopt(key, _text(state), float(opened or 0), float(cooled or 0))

    async def _claim_probe(self, key: str, ttl: float) -> bool:
        """One probe per cluster: the first process to SET NX wins; Redis down: allow."""
        if not self._link.usable:
            return True
        try:
            async with self._link.deadline():  # a request waits on this
                won = await self._link.client.set(
                    _PREFIX + key + ":probe", "1", nx=True, px=max(1, int(ttl * 1000)))
        except FAILURES as exc:
            self._link.failed(exc, "claiming a breaker probe")
            return True
        return bool(won)

    def _board_clock(self) -> float:
        return self._board.now()


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
