"""Routes: for each canonical model, the ordered list of targets that can serve it.

Pure selection, no I/O. Routes come from config; a model without a configured route is served
by every usable provider that maps it, in the providers' declared order (DeepSeek, OpenRouter,
Ollama Cloud by default). A request may pin one provider when config allows it.
"""

from __future__ import annotations

from dataclasses import dataclass

from gateway.config import GatewayConfig
from gateway.errors import InvalidRequest, NoProviderConfigured
from gateway.providers.base import Provider


@dataclass(frozen=True, slots=True)
class Target:
    provider: Provider
    upstream_model: str


class RouteTable:
    def __init__(self, config: GatewayConfig, providers: dict[str, Provider]) -> None:
        self._allow_pin = config.allow_provider_pin
        self._providers = providers
        self._routes: dict[str, tuple[Target, ...]] = {}
        for model in config.models:
            self._routes[model] = tuple(self._targets_for(config, model))

    def _targets_for(self, config: GatewayConfig, model: str) -> list[Target]:
        configured = config.routes.get(model)
        if configured is not None:
            return [
                Target(self._providers[t.provider],
                       t.model or self._providers[t.provider].config.models.get(model, model))
                for t in configured
                if t.provider in self._providers
            ]
        return [
            Target(provider, provider.config.models[model])
            for provider in self._providers.values()
            if model in provider.config.models
        ]

    def targets(self, model: str, pinned: str | None = None) -> tuple[Target, ...]:
        targets = self._routes.get(model, ())
        if pinned:
            if not self._allow_pin:
                raise InvalidRequest(
                    "pinning a provider with x-gateway-provider is disabled on this gateway"
                )
            targets = tuple(t for t in targets if t.provider.name == pinned)
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
        return targets

    def servable_models(self) -> set[str]:
        return {model for model, targets in self._routes.items() if targets}
