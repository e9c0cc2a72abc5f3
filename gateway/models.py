"""The model catalogue: which names the gateway accepts and what each one means.

A public name resolves to a canonical model plus a default thinking mode. Canonical names
(`deepseek-v4-flash`, `deepseek-v4-pro`) think by default, as on DeepSeek; retired names keep
their old meaning (`deepseek-chat` = flash without thinking, `deepseek-reasoner` = with);
provider-style names are plain aliases. All of it is data from config.
"""

from __future__ import annotations

from dataclasses import dataclass

from gateway.config import GatewayConfig
from gateway.errors import ModelNotFound


@dataclass(frozen=True, slots=True)
class ResolvedModel:
    canonical: str
    default_thinking: bool


class ModelCatalogue:
    def __init__(self, config: GatewayConfig) -> None:
        names: dict[str, ResolvedModel] = {}
        for canonical, model in config.models.items():
            resolved = ResolvedModel(canonical, model.thinking)
            names[canonical] = resolved
            for alias in model.aliases:
                names[alias] = resolved
        for alias, target in config.aliases.items():
            base = config.models[target.model]
            thinking = base.thinking if target.thinking is None else target.thinking
            names[alias] = ResolvedModel(target.model, thinking)
        self._names = names

    def resolve(self, name: str) -> ResolvedModel:
        try:
            return self._names[name]
        except KeyError:
            raise ModelNotFound(
                f"The model '{name}' does not exist or you do not have access to it.",
                param="model",
            ) from None

    def names(self) -> list[str]:
        return list(self._names)
