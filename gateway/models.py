"""The model catalogue: which names the gateway accepts and what each one means.

A public name resolves to a canonical model plus a default thinking mode. A canonical model is
one *generation* (e.g. V4.1-Flash) and every provider maps it to its own name for that same
generation (defaults.yaml), so a failover never changes the model. Canonical names think by
default, as on DeepSeek; retired names keep their old meaning (`deepseek-chat` = flash without
thinking); mode aliases (`deepseek-v4-flash-max`) pick a thinking mode for apps that cannot send
extra fields; provider-style names are plain aliases. All of it is data from config.

Per-model limits are checked here too (`check_output_limit`), before any provider is asked:
DeepSeek refuses max_tokens above 393,216, so every provider is held to the model's limit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gateway.config import GatewayConfig, ModelConfig, ThinkingDefault
from gateway.config_errors import did_you_mean
from gateway.errors import InvalidRequest, ModelNotFound
from gateway.thinking import Thinking, default_thinking

_OUTPUT_PARAMS = ("max_tokens", "max_completion_tokens")


@dataclass(frozen=True, slots=True)
class ResolvedModel:
    canonical: str
    default_thinking: bool
    default_effort: str | None = None  # set by a mode alias
    max_output: int | None = None
    clamp_output: bool = False

    @property
    def default(self) -> Thinking:
        return default_thinking(self.default_thinking, self.default_effort)


def _resolved(canonical: str, model: ModelConfig, thinking: ThinkingDefault | None
              ) -> ResolvedModel:
    enabled, effort = model.thinking, None
    if isinstance(thinking, bool):
        enabled = thinking
    elif thinking is not None:
        enabled, effort = thinking != "off", None if thinking == "off" else thinking
    return ResolvedModel(canonical, enabled, effort, model.max_output,
                         model.over_max_output == "clamp")


class ModelCatalogue:
    def __init__(self, config: GatewayConfig) -> None:
        names: dict[str, ResolvedModel] = {}
        for canonical, model in config.models.items():
            resolved = _resolved(canonical, model, None)
            names[canonical] = resolved
            for alias in model.aliases:
                names[alias] = resolved
        for alias, target in config.aliases.items():
            names[alias] = _resolved(target.model, config.models[target.model], target.thinking)
        self._names = names
        self._models = dict(config.models)

    def resolve(self, name: str) -> ResolvedModel:
        resolved = self._names.get(name)
        if resolved is None:
            raise self.not_found(name)
        return resolved

    def get(self, name: str) -> ResolvedModel | None:
        """The model a name stands for, or None; for surfaces that try other spellings
        before giving up (no error built on their common path)."""
        return self._names.get(name)

    def suggest(self, name: str) -> str:
        """' (did you mean 'x'?)' for the closest served name, or ''."""
        return did_you_mean(name, self._names)

    def not_found(self, name: str) -> ModelNotFound:
        return ModelNotFound(
            f"The model '{name}' does not exist or you do not have access to it."
            f"{self.suggest(name)}",
            param="model",
        )

    def names(self) -> list[str]:
        return list(self._names)

    def model(self, canonical: str) -> ModelConfig | None:
        return self._models.get(canonical)


def check_output_limit(model: ResolvedModel, params: dict[str, Any]) -> None:
    """Refuse (or clamp, when the model is so configured) an output limit the model cannot
    honour; 0 or negative is always refused. Changes `params` only when clamping."""
    for name in _OUTPUT_PARAMS:
        value = params.get(name)
        if value is None or isinstance(value, bool) or not isinstance(value, int):
            continue
        if value < 1:
            raise InvalidRequest(
                f"Invalid {name} value {value}: it must be a positive integer", param=name)
        limit = model.max_output
        if limit is not None and value > limit:
            if model.clamp_output:
                params[name] = limit
                continue
            raise InvalidRequest(
                f"Invalid {name} value {value}: the valid range for {model.canonical} is "
                f"[1, {limit}] (its maximum output is {limit:,} tokens)", param=name)
