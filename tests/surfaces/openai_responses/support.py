"""Shared helpers of the OpenAI Responses surface tests: a catalogue from the shipped defaults
and request bodies."""

from __future__ import annotations

from typing import Any

import orjson

from gateway.config import load_config
from gateway.core.call import Call
from gateway.models import ModelCatalogue
from gateway.surfaces.openai_responses.parse import ResponsesOptions, parse_responses

CONFIG = load_config(env={})
CATALOGUE = ModelCatalogue(CONFIG)
MODEL = "deepseek-v4-flash"
WEATHER = {"type": "function", "name": "get_weather", "description": "Weather for a city",
           "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}


def body(**fields: Any) -> dict[str, Any]:
    """A minimal valid request, with `fields` added or replaced."""
    return {"model": MODEL, "input": "Hello there", **fields}


def parse(data: dict[str, Any] | bytes) -> Call:
    raw = data if isinstance(data, bytes) else orjson.dumps(data)
    return parse_responses(raw, CATALOGUE)


def options(call: Call) -> ResponsesOptions:
    assert isinstance(call.options, ResponsesOptions)
    return call.options


def user(text: str) -> dict[str, Any]:
    return {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}
