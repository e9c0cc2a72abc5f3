"""Rate limits, in-process and shared through the real Redis."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest

from gateway.limits.ratelimit import Limit, RateLimiter
from gateway.limits.redislink import RedisLink

REDIS_URL = "redis://127.0.0.1:6379/0"


class Clock:
    def __init__(self, now: float = 1_000_040.0) -> None:  # 20 s into a minute window
        self.now = now

    def __call__(self) -> float:
        return self.now


LimiterPair = tuple[RateLimiter, RateLimiter, Clock]


@pytest.fixture(params=["local", "redis"])
async def limiter_pair(request: pytest.FixtureRequest) -> AsyncIterator[LimiterPair]:
    """Two limiters as two gateway processes would have: shared through Redis or, in-process,
    the same one (there is nothing to share)."""
    clock = Clock()
    if request.param == "local":
        one = RateLimiter(None, clock=clock)
        yield one, one, clock
        return
    # Exact counting through a healthy Redis: a generous request deadline, so a loaded test
    # machine opening 25 connections at once does not send some decisions in-process (the
    # deadline's fallback is tests/limits/test_redis_faults.py's).
    links = [RedisLink(REDIS_URL, request_timeout=2.0) for _ in range(2)]
    a, b = RateLimiter(links[0], clock=clock), RateLimiter(links[1], clock=clock)
    yield a, b, clock
    for link in links:
        await link.close()


def subject() -> str:
    return f"key:test-{uuid.uuid4().hex[:10]}"


async def test_requests_per_minute_are_exact_across_processes(limiter_pair: LimiterPair) -> None:
    a, b, _ = limiter_pair
    limit = Limit(subject(), rpm=10)
    results = await asyncio.gather(*[(a if i % 2 else b).admit([limit]) for i in range(25)])
    assert sum(d.allowed for d in results) == 10
    refused = [d for d in results if not d.allowed]
    assert refused[0].refused_by == limit and refused[0].refused_kind == "requests"
    assert refused[0].headers["x-ratelimit-remaining-requests"] == "0"
    assert refused[0].retry_after == pytest.approx(40.0)


async def test_a_new_minute_starts_a_new_window(limiter_pair: LimiterPair) -> None:
    a, b, clock = limiter_pair
    limit = Limit(subject(), rpm=2)
    assert (await a.admit([limit])).allowed and (await b.admit([limit])).allowed
    assert not (await a.admit([limit])).allowed
    clock.now += 60
    assert (await b.admit([limit])).allowed


async def test_tokens_are_charged_after_and_refuse_once_spent(limiter_pair: LimiterPair) -> None:
    a, b, _ = limiter_pair
    limit = Limit(subject(), tpm=1000)
    first = await a.admit([limit])
    assert first.allowed and first.headers["x-ratelimit-remaining-tokens"] == "1000"
    await a.charge_tokens([limit], 600)
    second = await b.admit([limit])
    assert second.allowed and second.headers["x-ratelimit-remaining-tokens"] == "400"
    await b.charge_tokens([limit], 500)
    third = await a.admit([limit])
    assert not third.allowed and third.refused_kind == "tokens"


async def test_a_request_counts_against_key_and_team_or_neither(limiter_pair: LimiterPair) -> None:
    a, _, _ = limiter_pair
    key, team = Limit(subject(), rpm=5), Limit(subject(), rpm=2)
    assert (await a.admit([key, team])).allowed
    assert (await a.admit([key, team])).allowed
    refused = await a.admit([key, team])
    assert not refused.allowed and refused.refused_by == team
    # the refused request did not use up the key's own allowance
    decision = await a.admit([key])
    assert decision.headers["x-ratelimit-remaining-requests"] == "2"


async def test_no_limits_means_no_headers_and_no_redis_call() -> None:
    limiter = RateLimiter("redis://127.0.0.1:1/0")  # unreachable: must not be touched
    decision = await limiter.admit([Limit("key:x")])
    assert decision.allowed and decision.headers == {}


async def test_redis_down_falls_back_to_in_process_counting() -> None:
    limiter = RateLimiter("redis://127.0.0.1:1/0")
    limit = Limit(subject(), rpm=1)
    assert (await limiter.admit([limit])).allowed
    assert not (await limiter.admit([limit])).allowed
    await limiter.close()


async def test_counters_redis_lost_carry_on_from_the_counts_last_seen() -> None:
    """Redis restarted empty (or was flushed) between two heartbeats: no process saw it down,
    so nothing was restored, and the minute started over (17 of rpm 10 admitted here)."""
    clock = Clock()
    links = [RedisLink(REDIS_URL, request_timeout=2.0) for _ in range(2)]
    a, b = RateLimiter(links[0], clock=clock), RateLimiter(links[1], clock=clock)
    limit = Limit(subject(), rpm=10, tpm=1000)
    try:
        admitted = 0
        for i in range(6):
            admitted += (await (a if i % 2 else b).admit([limit])).allowed
        await a.charge_tokens([limit], 700)
        assert (await b.admit([limit])).headers["x-ratelimit-remaining-tokens"] == "300"
        admitted += 1
        lost = [key async for key in links[0].client.scan_iter(match=f"*{limit.subject}*")]
        assert len(lost) == 2  # this minute's request and token counters
        await links[0].client.delete(*lost)
        decisions = [await (a if i % 2 else b).admit([limit]) for i in range(10)]
        admitted += sum(d.allowed for d in decisions)
        # Each process lifts from what it last saw, so one admit it had not seen may slip by.
        assert admitted <= 11, admitted
        assert decisions[0].headers["x-ratelimit-remaining-tokens"] == "300"
    finally:
        for link in links:
            await link.close()
