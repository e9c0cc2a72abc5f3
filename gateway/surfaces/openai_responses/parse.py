"""Parsing a Responses request (`POST /v1/responses`) into a canonical call.

The body is parsed once with orjson; only what the gateway reads is type-checked and unknown
fields are ignored (Codex sends `client_metadata`, `prompt_cache_key`, ...; nothing unknown is
forwarded upstream). A problem is a 400 naming the field, e.g. `input[2].content[0].type`.

- `instructions` -> a system message first (never carried over by `previous_response_id`, as
  on OpenAI); `input` -> messages (inputs.py); `tools`, `tool_choice` -> function tools
  (tools.py); `parallel_tool_calls`, `temperature`, `top_p` as they are; `max_output_tokens` ->
  `max_tokens`; `text.format` json_object | json_schema -> `response_format`; `user` (or
  `safety_identifier`) -> `user`; `metadata` is only echoed (at most 16 string pairs).
- `reasoning.effort`: none -> thinking off; minimal | low -> Low, medium | high -> High,
  xhigh -> Think Max (the top of OpenAI's scale, as OpenRouter maps it for DeepSeek V4; see
  gateway/thinking.py); absent -> the model's default.
  `reasoning.summary` is echoed: the reasoning comes back whole, as `reasoning_text`.
- `store` (default true), `previous_response_id`, `include` (only
  `reasoning.encrypted_content` changes anything) go into `ResponsesOptions`; `prepare` in
  surface.py loads the previous response. `background`, `conversation` and `prompt` (stored
  prompts) are 400s: the gateway has none of them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, TypeGuard

from gateway.core.call import Call, Message
from gateway.errors import InvalidRequest
from gateway.models import ModelCatalogue
from gateway.surfaces.body import json_object
from gateway.surfaces.openai_responses.ids import new_id
from gateway.surfaces.openai_responses.inputs import Item, normalize_input, to_messages
from gateway.surfaces.openai_responses.tools import (
    Namespaced,
    translate_tool_choice,
    translate_tools,
)
from gateway.thinking import extract_thinking

API = "openai.responses"
ENCRYPTED_REASONING = "reasoning.encrypted_content"
_MAX_METADATA = 16
_UNSUPPORTED = {
    "background": "background responses are not supported by this gateway",
    "conversation": "conversations (the Conversations API) are not supported by this "
                    "gateway; use previous_response_id or send the whole input",
    "prompt": "stored prompts are not supported by this gateway; send instructions and input",
}


@dataclass(slots=True)
class ResponsesOptions:
    """What prepare, the renderers and the store need beyond the canonical call."""

    response_id: str
    created_at: int
    requested_model: str
    store: bool
    include_encrypted: bool  # include: reasoning.encrypted_content
    namespaced: Namespaced
    instructions: list[Message]  # the system message of `instructions`, if any
    input_items: list[Item]  # this request's input, normalized (ids given)
    echo: dict[str, Any]  # the request's settings as the response object repeats them
    previous_response_id: str | None = None
    history: list[Item] = field(default_factory=list)  # items before `input` (prepare)
    owner: str | None = None  # the key that made it (prepare)
    storing: bool = False  # prepare found `store` asked for and a database to keep it in


def parse_responses(raw: bytes, catalogue: ModelCatalogue) -> Call:
    body = _load(raw)
    model_name = body.get("model")
    if not isinstance(model_name, str) or not model_name:
        raise InvalidRequest("model: a model name (string) is required", param="model")
    for name, message in _UNSUPPORTED.items():
        if body.get(name) not in (None, False):
            raise InvalidRequest(f"{name}: {message}", param=name)
    if "input" not in body:
        raise InvalidRequest("input: is required", param="input")
    items = normalize_input(body["input"])
    instructions = _instructions(body.get("instructions"))
    messages = [*instructions, *to_messages(items)]

    params: dict[str, Any] = {}
    _sampling(body, params)
    tools = translate_tools(body.get("tools"))
    choice, offered = translate_tool_choice(body.get("tool_choice"), tools)
    if offered:
        params["tools"] = offered
    if choice is not None:
        params["tool_choice"] = choice
    text = _text_format(body.get("text"), params)
    user = _user(body)
    if user is not None:
        params["user"] = user
    metadata = _metadata(body.get("metadata"))
    stream = _bool(body, "stream", False)
    store = _bool(body, "store", True)
    previous = body.get("previous_response_id")
    if previous is not None and (not isinstance(previous, str) or not previous):
        raise InvalidRequest("previous_response_id: must be a response id (string)",
                             param="previous_response_id")
    include = body.get("include")
    if include is not None and (
            not isinstance(include, list) or not all(isinstance(i, str) for i in include)):
        raise InvalidRequest("include: must be an array of strings", param="include")

    reasoning = body.get("reasoning")
    summary = reasoning.get("summary") if isinstance(reasoning, dict) else None
    model = catalogue.resolve(model_name)
    thinking = extract_thinking(
        {"reasoning": reasoning} if reasoning is not None else {}, model.default_thinking,
        model.default_effort)

    echo = {
        "instructions": body.get("instructions"),
        "max_output_tokens": params.get("max_tokens"),
        "metadata": metadata,
        "parallel_tool_calls": params.get("parallel_tool_calls", True),
        "previous_response_id": previous,
        "reasoning": {"effort": reasoning.get("effort") if isinstance(reasoning, dict)
                      else None, "summary": summary},
        "temperature": params.get("temperature"),
        "text": text,
        "tool_choice": body.get("tool_choice", "auto"),
        "tools": body.get("tools") or [],
        "top_p": params.get("top_p"),
        "truncation": "disabled",
        "user": user,
    }
    options = ResponsesOptions(
        response_id=new_id("resp"), created_at=int(time.time()), requested_model=model_name,
        store=store, include_encrypted=ENCRYPTED_REASONING in (include or ()),
        namespaced=tools.namespaced, instructions=instructions, input_items=items, echo=echo,
        previous_response_id=previous)
    return Call(API, model_name, model, thinking, messages, params, stream, user, options)


def with_history(call: Call, history: list[Item]) -> None:
    """Continue a stored conversation: `history` (the items before this request's input, in
    order) goes between the instructions and the input."""
    options = call.options
    assert isinstance(options, ResponsesOptions)
    options.history = history
    call.messages = [*options.instructions, *to_messages([*history, *options.input_items])]


# ---- fields ------------------------------------------------------------------------------


_load = json_object


def _is_int(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _bool(body: dict[str, Any], name: str, default: bool) -> bool:
    value = body.get(name)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise InvalidRequest(f"{name}: must be a boolean", param=name)
    return value


def _instructions(value: Any) -> list[Message]:
    if value is None or value == "":
        return []
    if not isinstance(value, str):
        raise InvalidRequest("instructions: must be a string", param="instructions")
    return [{"role": "system", "content": value}]


def _sampling(body: dict[str, Any], params: dict[str, Any]) -> None:
    for name in ("temperature", "top_p"):
        value = body.get(name)
        if value is not None:
            if not isinstance(value, int | float) or isinstance(value, bool):
                raise InvalidRequest(f"{name}: must be a number", param=name)
            params[name] = value
    limit = body.get("max_output_tokens")
    if limit is not None:
        if not _is_int(limit) or limit < 1:
            raise InvalidRequest("max_output_tokens: must be a positive integer",
                                 param="max_output_tokens")
        params["max_tokens"] = limit
    parallel = body.get("parallel_tool_calls")
    if parallel is not None:
        if not isinstance(parallel, bool):
            raise InvalidRequest("parallel_tool_calls: must be a boolean",
                                 param="parallel_tool_calls")
        params["parallel_tool_calls"] = parallel


def _text_format(value: Any, params: dict[str, Any]) -> dict[str, Any]:
    """`text.format` as `response_format`; returns the `text` the response echoes."""
    if value is None:
        return {"format": {"type": "text"}}
    if not isinstance(value, dict):
        raise InvalidRequest("text: must be an object", param="text")
    fmt = value.get("format")
    if fmt is None:
        return {**value, "format": {"type": "text"}}
    kind = fmt.get("type") if isinstance(fmt, dict) else None
    if kind == "json_object":
        params["response_format"] = {"type": "json_object"}
    elif kind == "json_schema":
        assert isinstance(fmt, dict)
        name, schema = fmt.get("name"), fmt.get("schema")
        if not isinstance(name, str) or not name:
            raise InvalidRequest("text.format.name: a non-empty string is required",
                                 param="text.format.name")
        if not isinstance(schema, dict):
            raise InvalidRequest("text.format.schema: an object (a JSON schema) is required",
                                 param="text.format.schema")
        json_schema: dict[str, Any] = {"name": name, "schema": schema}
        for key in ("description", "strict"):
            if fmt.get(key) is not None:
                json_schema[key] = fmt[key]
        params["response_format"] = {"type": "json_schema", "json_schema": json_schema}
    elif kind != "text":
        raise InvalidRequest(
            f"text.format.type: must be text, json_object or json_schema; got {kind!r}",
            param="text.format.type")
    return value


def _user(body: dict[str, Any]) -> str | None:
    for name in ("user", "safety_identifier"):
        value = body.get(name)
        if value is not None:
            if not isinstance(value, str):
                raise InvalidRequest(f"{name}: must be a string", param=name)
            return value
    return None


def _metadata(value: Any) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or len(value) > _MAX_METADATA or not all(
            isinstance(k, str) and len(k) <= 64 and isinstance(v, str) and len(v) <= 512
            for k, v in value.items()):
        raise InvalidRequest(
            "metadata: at most 16 pairs of strings (keys up to 64 characters, values up to "
            "512)", param="metadata")
    return value
