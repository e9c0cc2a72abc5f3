"""Shared fixtures of the Ollama API surface tests: a catalogue from the shipped defaults and
helpers that build request bodies and canonical chunks."""

from __future__ import annotations

from typing import Any

import orjson

from gateway.config import load_config
from gateway.core.answer import Chunk, Delta, ToolCallDelta
from gateway.core.call import Call
from gateway.models import ModelCatalogue
from gateway.surfaces.ollama.parse import parse_chat, parse_generate
from gateway.usage import Usage

CONFIG = load_config(env={})
CATALOGUE = ModelCatalogue(CONFIG)
# A 1x1 PNG, base64, as Ollama's clients send images.
PNG = ("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJ"
       "RU5ErkJggg==")
JPEG = "/9j/4AAQSkZJRgABAQAAAQABAAD/2wBDAAgGBgcGBQgHBwcJCQgKDBQNDAsLDBkSEw8U"


def chat_body(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"model": "deepseek-v4-flash",
                            "messages": [{"role": "user", "content": "Hello there"}]}
    base.update(fields)
    return base


def chat(data: dict[str, Any] | bytes) -> Call:
    return parse_chat(data if isinstance(data, bytes) else orjson.dumps(data), CATALOGUE)


def generate(data: dict[str, Any]) -> Call:
    return parse_generate(orjson.dumps(data), CATALOGUE)


def chunk(*deltas: Delta, usage: Usage | None = None) -> Chunk:
    return Chunk(list(deltas), usage, {"id": "chatcmpl-1"})


def tool(index: int, id: str | None = None, name: str | None = None,
         arguments: str | None = None) -> Delta:
    return Delta(0, tool_calls=[ToolCallDelta(index, id, name, arguments)])


def lines(raw: bytes) -> list[dict[str, Any]]:
    """Split NDJSON, checking the framing: one JSON object per line, each line ended."""
    assert raw == b"" or raw.endswith(b"\n")
    out = []
    for line in raw.split(b"\n")[:-1]:
        value = orjson.loads(line)
        assert isinstance(value, dict)
        out.append(value)
    return out
