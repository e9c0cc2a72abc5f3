"""Every field of a rich, valid request, replaced in turn by a value of each JSON type, parses
into a call or fails with a gateway error (a 4xx naming the problem): never a TypeError or
KeyError, which the pipeline would answer with a 500. Deterministic: each surface's sample
body is walked path by path, so a new field in a sample is covered without more code.

Unhashable values (arrays, objects) are the usual culprits: `value in frozenset(...)` raises
TypeError for them where a string check was meant."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import orjson
import pytest

from gateway.core.call import Call
from gateway.errors import GatewayError
from gateway.surfaces.openai_chat.parse import parse_chat_request
from tests.surfaces.anthropic_messages import support as anthropic
from tests.surfaces.ollama import support as ollama
from tests.surfaces.openai_responses import support as responses

Path = tuple[str | int, ...]
REPLACEMENTS: tuple[Any, ...] = ([], {}, [1], {"a": 1}, 0, -1, 1.5, "x", "", None, True)
TOOL = {"type": "function", "function": {
    "name": "get_weather", "description": "Weather",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}


def _chat(raw: bytes) -> Call:
    return parse_chat_request(raw, responses.CATALOGUE)


SAMPLES: dict[str, tuple[Callable[[bytes], Call], dict[str, Any]]] = {
    "openai.chat": (_chat, {
        "model": "deepseek-v4-flash", "stream": True,
        "stream_options": {"include_usage": True}, "temperature": 0.5, "max_tokens": 64,
        "n": 1, "stop": ["x"], "user": "u", "tools": [TOOL], "tool_choice": "auto",
        "reasoning_effort": "high", "thinking": {"type": "enabled"},
        "reasoning": {"effort": "high"},
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": [{"type": "text", "text": "hi"}]},
            {"role": "assistant", "content": None, "tool_calls": [
                {"id": "c1", "type": "function",
                 "function": {"name": "get_weather", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
        ]}),
    "openai.responses": (lambda raw: responses.parse(raw), {
        "model": "deepseek-v4-flash", "instructions": "Be brief.", "stream": True,
        "max_output_tokens": 64, "reasoning": {"effort": "high"}, "tool_choice": "auto",
        "tools": [responses.WEATHER], "store": False,
        "input": [
            {"role": "user", "content": [{"type": "input_text", "text": "hi"}]},
            {"type": "function_call", "call_id": "c1", "name": "get_weather",
             "arguments": "{}"},
            {"type": "function_call_output", "call_id": "c1", "output": "sunny"},
        ]}),
    "anthropic.messages": (lambda raw: anthropic.parse(raw), {
        "model": "claude-sonnet-4-5", "max_tokens": 1024, "stream": True,
        "system": [{"type": "text", "text": "Be brief."}],
        "thinking": {"type": "enabled", "budget_tokens": 2048},
        "output_config": {"effort": "high"}, "temperature": 0.5,
        "tool_choice": {"type": "auto"}, "stop_sequences": ["x"],
        "tools": [{"name": "get_weather", "description": "Weather",
                   "input_schema": {"type": "object"}}],
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "hi"}]},
            {"role": "assistant", "content": [
                {"type": "tool_use", "id": "t1", "name": "get_weather", "input": {}}]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "t1", "content": "sunny"}]},
        ]}),
    "ollama.chat": (lambda raw: ollama.chat(raw), {
        "model": "deepseek-v4-flash", "stream": True, "think": True, "format": "json",
        "options": {"temperature": 0.5, "num_predict": 64, "stop": ["x"]},
        "tools": [TOOL],
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "hi", "images": [ollama.PNG]},
            {"role": "assistant", "content": "", "tool_calls": [
                {"function": {"name": "get_weather", "arguments": {"city": "Oslo"}}}]},
            {"role": "tool", "content": "sunny", "tool_name": "get_weather"},
        ]}),
}


def _paths(value: Any, path: Path = ()) -> Iterator[Path]:
    if path:
        yield path
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _paths(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _paths(item, (*path, index))


def _replaced(body: Any, path: Path, new: Any) -> Any:
    if not path:
        return new
    head, rest = path[0], path[1:]
    if isinstance(body, dict):
        return {**body, str(head): _replaced(body[head], rest, new)}
    copy = list(body)
    copy[int(head)] = _replaced(body[int(head)], rest, new)
    return copy


@pytest.mark.parametrize("surface", sorted(SAMPLES))
def test_each_sample_is_valid(surface: str) -> None:
    parse, body = SAMPLES[surface]
    assert parse(orjson.dumps(body)).messages


@pytest.mark.parametrize("surface", sorted(SAMPLES))
def test_a_mistyped_field_anywhere_is_a_gateway_error_or_accepted(surface: str) -> None:
    parse, body = SAMPLES[surface]
    crashes: list[str] = []
    for path in _paths(body):
        for new in REPLACEMENTS:
            raw = orjson.dumps(_replaced(body, path, new))
            try:
                parse(raw)
            except GatewayError as err:
                if not 400 <= err.status < 500:
                    crashes.append(f"{path} = {new!r}: status {err.status}")
            except Exception as exc:  # anything else is a 500 in the pipeline
                crashes.append(f"{path} = {new!r}: {type(exc).__name__}: {exc}")
    assert not crashes, "\n".join(crashes)
