"""Model names on the Anthropic surface: Claude names mapped onto the gateway's models, and
`GET /v1/models` in Anthropic's shape.

Claude Code and the anthropic SDKs ask for Claude models by name (`claude-opus-4-1`,
`claude-3-5-haiku-20241022`, whatever `ANTHROPIC_MODEL` says). A name the gateway's catalogue
knows (`deepseek-v4-pro`, an alias) means what it means everywhere; any other name is matched
against the configured prefixes (`anthropic.models`), longest first, so that `claude-opus*`
can mean the big model and every other `claude*` the fast one. Anything else is a 404.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import orjson

from gateway.config import ConfigError
from gateway.errors import ModelNotFound
from gateway.models import ModelCatalogue, ResolvedModel

# Anthropic's model objects carry a release date; the gateway's names have none to give.
_UNKNOWN_CREATED_AT = "1970-01-01T00:00:00Z"


class ClaudeModels:
    """The prefix map of `anthropic.models`, resolved against a catalogue."""

    __slots__ = ("_prefixes",)

    def __init__(self, prefixes: Mapping[str, str]) -> None:
        # Longest prefix first, so `claude-opus` wins over `claude` for `claude-opus-4-1`.
        self._prefixes = sorted(prefixes.items(), key=lambda item: len(item[0]), reverse=True)

    def check(self, catalogue: ModelCatalogue) -> None:
        """Refuse at start a prefix that points at no model of the catalogue."""
        known = set(catalogue.names())
        for prefix, target in self._prefixes:
            if target not in known:
                raise ConfigError(f"anthropic.models.{prefix}: unknown model {target!r}")

    def resolve(self, name: str, catalogue: ModelCatalogue) -> ResolvedModel:
        resolved = catalogue.get(name)
        if resolved is not None:
            return resolved
        lowered = name.lower()
        for prefix, target in self._prefixes:
            if lowered.startswith(prefix.lower()):
                return catalogue.resolve(target)
        raise ModelNotFound(f"model: {name}{catalogue.suggest(name)}", param="model")


def anthropic_model_list(names: Iterable[str]) -> bytes:
    """`GET /v1/models` as Anthropic answers it: one page holding every name."""
    data = [
        {"type": "model", "id": name, "display_name": name, "created_at": _UNKNOWN_CREATED_AT}
        for name in names
    ]
    return orjson.dumps({
        "data": data,
        "has_more": False,
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
    })
