"""Admission: may this caller send this request now? And, when it ends, what did it cost them?

Before the upstream call: the key's model allow-list, its and its team's rate limits (one
atomic check), and their budgets. After it: the answer's tokens and cost are charged, from a
background task so the client never waits for Redis. A caller with no limits (the master key,
a loopback client) passes without a single await.
"""

from __future__ import annotations

import asyncio
import logging

from gateway.errors import ModelNotFound, QuotaExceeded, RateLimited
from gateway.keys.principal import Principal
from gateway.limits.budget import BudgetTracker
from gateway.limits.ratelimit import RateLimiter
from gateway.limits.redislink import RedisLink
from gateway.usage import UsageEvent

log = logging.getLogger("gateway.limits")


class Admission:
    def __init__(self, limiter: RateLimiter, budgets: BudgetTracker,
                 link: RedisLink | None = None) -> None:
        self.limiter = limiter
        self.budgets = budgets
        self.link = link  # the Redis both share, with its breaker (owned here)
        self._charges: set[asyncio.Task[None]] = set()

    def start(self) -> None:
        if self.link is not None:
            self.link.start()

    async def admit(self, principal: Principal, model: str, requested: str) -> dict[str, str]:
        """Raise if the request may not go ahead; else the x-ratelimit-* headers to send."""
        if not principal.may_use(model):
            raise ModelNotFound(
                f"The model '{requested}' does not exist or you do not have access to it.",
                param="model",
            )
        if not principal.limits and not principal.budgets:
            return {}
        if principal.budgets:
            exhausted = await self.budgets.check(principal.budgets)
            if exhausted is not None:
                raise QuotaExceeded(exhausted.message())
        decision = await self.limiter.admit(principal.limits)
        if not decision.allowed:
            assert decision.refused_by is not None
            kind, _, name = decision.refused_by.subject.partition(":")
            wait = max(1, round(decision.retry_after))
            raise RateLimited(
                f"Rate limit reached for {kind} '{name}': {decision.refused_kind} per minute. "
                f"Try again in {wait} s.",
                headers={**decision.headers, "retry-after": str(wait)},
            )
        return decision.headers

    def record(self, event: UsageEvent) -> None:
        """UsageSink: charge a finished request's tokens and cost to its caller."""
        principal = event.principal
        if principal is None or not (principal.limits or principal.budgets):
            return
        tokens = event.usage.total_tokens if event.usage is not None else 0
        cost = event.cost_usd or 0.0
        if tokens <= 0 and cost <= 0:
            return
        task = asyncio.get_running_loop().create_task(self._charge(principal, tokens, cost))
        self._charges.add(task)
        task.add_done_callback(self._charges.discard)

    async def _charge(self, principal: Principal, tokens: int, cost: float) -> None:
        try:
            await self.limiter.charge_tokens(principal.limits, tokens)
            await self.budgets.charge(principal.budgets, cost)
        except Exception:  # a charge must never surface in a request; it is logged
            log.exception("charging usage to %s failed", principal.key_id or principal.team)

    async def close(self) -> None:
        """Finish pending charges (shutdown), then release Redis connections."""
        if self._charges:
            await asyncio.gather(*self._charges, return_exceptions=True)
        await self.limiter.close()
        await self.budgets.close()
        if self.link is not None:
            await self.link.close()
