"""Shared fixtures of the Anthropic Messages surface tests: a catalogue from the shipped
defaults, a signer with a known key, and helpers that build request bodies."""

from __future__ import annotations

from typing import Any

import orjson

from gateway.config import load_config
from gateway.core.call import Call
from gateway.models import ModelCatalogue
from gateway.surfaces.anthropic_messages.models import ClaudeModels
from gateway.surfaces.anthropic_messages.parse import parse_messages
from gateway.surfaces.anthropic_messages.signatures import ThinkingSigner

CONFIG = load_config(env={})
CATALOGUE = ModelCatalogue(CONFIG)
MODELS = ClaudeModels(CONFIG.anthropic.models)
SIGNER = ThinkingSigner(b"test-secret")


def body(**fields: Any) -> dict[str, Any]:
    """A minimal valid request, with `fields` added or replaced."""
    base: dict[str, Any] = {
        "model": "claude-sonnet-4-5",
        "max_tokens": 1024,
        "messages": [{"role": "user", "content": "Hello there"}],
    }
    base.update(fields)
    return base


def parse(data: dict[str, Any] | bytes, **kwargs: Any) -> Call:
    raw = data if isinstance(data, bytes) else orjson.dumps(data)
    return parse_messages(raw, CATALOGUE, MODELS, SIGNER, **kwargs)


def user(*blocks: dict[str, Any]) -> dict[str, Any]:
    return {"role": "user", "content": list(blocks)}


def assistant(*blocks: dict[str, Any]) -> dict[str, Any]:
    return {"role": "assistant", "content": list(blocks)}
