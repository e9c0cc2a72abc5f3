"""Routes and strategies: for a request, the order in which targets should be tried.

Pure selection, no I/O: health and latency come in as arguments, randomness from a passed-in
`random.Random`, so every strategy is testable. A model without a configured route is served by
every usable provider that maps it, in the providers' declared order (DeepSeek, OpenRouter,
Ollama Cloud by default). A request may pin one provider when config allows it.

Strategies, applied within each priority level (lower priority first):
  ordered   the configured order
  weighted  a weighted random order (sampling without replacement)
  cheapest  by the price book's price now (gateway/metering/prices.py), cheapest first
  latency   by moving average time to first token, fastest first; unmeasured targets first
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import groupby

from gateway.config import GatewayConfig, RouteConfig, Strategy, TargetConfig
from gateway.errors import InvalidRequest, NoProviderConfigured
from gateway.metering.prices import Price, PriceBook
from gateway.providers.base import Provider
from gateway.thinking import Thinking


@dataclass(frozen=True, slots=True)
class Target:
    provider: Provider
    upstream_model: str
    thinking: bool | None = None
    weight: float = 1.0
    priority: int = 0
    model: str = ""  # the canonical model, for the price book
    # Identity for health and latency: one breaker per (provider, upstream model). Made once:
    # failover reads it four or five times a call.
    key: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "key", f"{self.provider.name}/{self.upstream_model}")

    def thinking_for(self, requested: Thinking) -> Thinking:
        """A target may force thinking on or off (e.g. a cheap no-thinking fallback)."""
        if self.thinking is None or self.thinking == requested.enabled:
            return requested
        return Thinking(enabled=self.thinking)


@dataclass(frozen=True, slots=True)
class Route:
    strategy: Strategy
    targets: tuple[Target, ...]


class RouteTable:
    def __init__(self, config: GatewayConfig, providers: dict[str, Provider],
                 prices: PriceBook | None = None,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self._allow_pin = config.allow_provider_pin
        self._prices = prices
        self._clock = clock
        self._routes: dict[str, Route] = {}
        for model in config.models:
            configured = config.routes.get(model)
            route = configured or RouteConfig(targets=[
                TargetConfig(provider=name) for name, p in providers.items()
                if model in p.config.models
            ])
            targets = tuple(
                _target(providers[t.provider], t, model)
                for t in route.targets if t.provider in providers
            )
            self._routes[model] = Route(route.strategy, targets)

    def route(self, model: str) -> Route:
        return self._routes.get(model, Route("ordered", ()))

    def plan(
        self,
        model: str,
        pinned: str | None = None,
        *,
        latency: Callable[[str], float | None] = lambda key: None,
        rng: random.Random | None = None,
    ) -> list[Target]:
        """All targets for `model` in the order to try them."""
        route = self.route(model)
        targets = list(route.targets)
        if pinned:
            if not self._allow_pin:
                raise InvalidRequest(
                    "pinning a provider with x-gateway-provider is disabled on this gateway"
                )
            targets = [t for t in targets if t.provider.name == pinned]
            if not targets:
                raise InvalidRequest(
                    f"provider '{pinned}' cannot serve model '{model}' on this gateway",
                    param="x-gateway-provider",
                )
        if not targets:
            raise NoProviderConfigured(
                f"no upstream provider is configured for model '{model}'; set one of "
                "DEEPSEEK_API_KEY, OPENROUTER_API_KEY or OLLAMA_API_KEY"
            )
        if len(targets) == 1:
            return targets
        targets.sort(key=lambda t: t.priority)  # stable: keeps configured order within a level
        ordered: list[Target] = []
        price = self._blended_price if route.strategy == "cheapest" else _no_price
        for _, level in groupby(targets, key=lambda t: t.priority):
            ordered.extend(_order(route.strategy, list(level), latency, rng, price))
        return ordered

    def _blended_price(self, target: Target) -> float:
        """One number to rank targets by, from the book now: a typical call reads ~3x what it
        writes. A target the book has no price for ranks last."""
        found = self._prices.price(target.provider.name, target.model, self._clock()) \
            if self._prices is not None else None
        return float("inf") if found is None else 3 * found.cache_miss + found.output

    def current_prices(self, model: str) -> dict[str, Price]:
        """provider -> the book's price now for `model` (for `/v1/models`)."""
        if self._prices is None:
            return {}
        now = self._clock()
        out: dict[str, Price] = {}
        for target in self.route(model).targets:
            price = self._prices.price(target.provider.name, model, now)
            if price is not None:
                out[target.provider.name] = price
        return out

    def servable_models(self) -> set[str]:
        return {model for model, route in self._routes.items() if route.targets}

    def all_targets(self) -> list[Target]:
        return [t for route in self._routes.values() for t in route.targets]


def _target(provider: Provider, cfg: TargetConfig, model: str) -> Target:
    return Target(
        provider=provider,
        upstream_model=cfg.model or provider.config.models.get(model, model),
        thinking=cfg.thinking,
        weight=cfg.weight,
        priority=cfg.priority,
        model=model,
    )


def _no_price(target: Target) -> float:
    return 0.0


def _order(
    strategy: Strategy,
    targets: list[Target],
    latency: Callable[[str], float | None],
    rng: random.Random | None,
    price: Callable[[Target], float],
) -> list[Target]:
    if strategy == "weighted":
        return _weighted_order(targets, rng or random.Random())
    if strategy == "cheapest":
        return sorted(targets, key=price)
    if strategy == "latency":
        return sorted(targets, key=lambda t: latency(t.key) or 0.0)
    return targets


def _weighted_order(targets: list[Target], rng: random.Random) -> list[Target]:
    """Efraimidis-Spirakis: sort by u^(1/w); the first pick is proportional to weight."""
    return sorted(targets, key=lambda t: rng.random() ** (1.0 / t.weight), reverse=True)
