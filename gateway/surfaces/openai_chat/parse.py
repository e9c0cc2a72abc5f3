"""Parsing a Chat Completions request into a canonical call: once, with orjson, checking only
what the gateway relies on.

Validating the whole request through pydantic models would cost more than the rest of the hot
path (DESIGN.md). Instead the body is parsed once and the fields the gateway reads, or that an
upstream would reject with a less helpful message, are type-checked here. Everything else is
passed through untouched (in `Call.params`) for the provider to judge: the canonical message
schema is the chat schema, so messages need no translation here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NoReturn

from gateway.core.call import Call
from gateway.errors import InvalidRequest
from gateway.models import ModelCatalogue
from gateway.surfaces.body import json_object
from gateway.thinking import extract_thinking

API = "openai.chat"

_MAX_CHOICES = 128  # OpenAI's own bound on `n`

_ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})
_CONTENT_REQUIRED = frozenset({"system", "developer", "user", "tool"})

# Optional fields whose type we check: name -> (accepted types, description for the message).
_FIELD_TYPES: dict[str, tuple[tuple[type, ...], str]] = {
    "stream": ((bool,), "a boolean"),
    "stream_options": ((dict,), "an object"),
    "temperature": ((int, float), "a number"),
    "top_p": ((int, float), "a number"),
    "presence_penalty": ((int, float), "a number"),
    "frequency_penalty": ((int, float), "a number"),
    "max_tokens": ((int,), "an integer"),
    "max_completion_tokens": ((int,), "an integer"),
    "n": ((int,), "an integer"),
    "seed": ((int,), "an integer"),
    "logprobs": ((bool,), "a boolean"),
    "top_logprobs": ((int,), "an integer"),
    "tools": ((list,), "an array"),
    "tool_choice": ((str, dict), "a string or an object"),
    "parallel_tool_calls": ((bool,), "a boolean"),
    "response_format": ((dict,), "an object"),
    "stop": ((str, list), "a string or an array of strings"),
    "user": ((str,), "a string"),
}


@dataclass(frozen=True, slots=True)
class ChatOptions:
    """What the renderers need beyond the canonical call."""

    include_usage: bool  # stream_options.include_usage: show the usage chunk


def parse_chat_request(raw: bytes, catalogue: ModelCatalogue) -> Call:
    body = json_object(raw)

    model_name = body.get("model")
    if model_name is None:
        raise InvalidRequest("you must provide a model parameter", param="model")
    if not isinstance(model_name, str):
        raise InvalidRequest("'model' must be a string", param="model")
    _check_messages(body.get("messages"))
    # A body names a few of the checked fields: look at its keys, not at all eighteen; any
    # misfit goes through the full check, which reports the first in `_FIELD_TYPES` order.
    for name in body:
        checked = _FIELD_TYPES.get(name)
        if checked is not None and not _fits(body[name], checked[0]):
            _check_field_types(body)
    n = body.get("n")
    if n is not None and not 1 <= n <= _MAX_CHOICES:
        raise InvalidRequest(f"'n' must be between 1 and {_MAX_CHOICES}", param="n")

    model = catalogue.resolve(model_name)
    thinking = extract_thinking(body, model.default_thinking, model.default_effort)
    stream = body.pop("stream", None) is True
    options = body.get("stream_options")
    include_usage = stream and isinstance(options, dict) and options.get("include_usage") is True
    del body["model"]
    messages = body.pop("messages")
    user = body.get("user")
    return Call(API, model_name, model, thinking, messages, body, stream,
                user if isinstance(user, str) else None, ChatOptions(include_usage))


def _fits(value: Any, types: tuple[type, ...]) -> bool:
    """None counts as absent; a boolean is not a number."""
    return value is None or (
        isinstance(value, types) and (bool in types or not isinstance(value, bool)))


def _check_field_types(body: dict[str, Any]) -> None:
    for name, (types, description) in _FIELD_TYPES.items():
        if not _fits(body.get(name), types):
            raise InvalidRequest(f"'{name}' must be {description}", param=name)


def _check_messages(messages: Any) -> None:
    if messages is None:
        raise InvalidRequest("'messages' is a required property", param="messages")
    if not isinstance(messages, list) or not messages:
        raise InvalidRequest("'messages' must be a non-empty array", param="messages")
    # Agents send hundreds of messages: the common message passes three lookups, and only a
    # misfit pays for naming itself.
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            _message_error(i, message)
        role = message.get("role")
        content = message.get("content")
        tool_calls = message.get("tool_calls")
        if (not isinstance(role, str) or role not in _ROLES
                or (content is None and role in _CONTENT_REQUIRED)
                or not (content is None or isinstance(content, str | list))
                or not (tool_calls is None or isinstance(tool_calls, list))):
            _message_error(i, message)


def _message_error(i: int, message: Any) -> NoReturn:
    where = f"messages[{i}]"
    if not isinstance(message, dict):
        raise InvalidRequest(f"'{where}' must be an object", param=where)
    role = message.get("role")
    if not isinstance(role, str) or role not in _ROLES:
        raise InvalidRequest(
            f"'{where}.role' must be one of {', '.join(sorted(_ROLES))}; got {role!r}",
            param=f"{where}.role",
        )
    content = message.get("content")
    if content is not None and not isinstance(content, str | list):
        raise InvalidRequest(
            f"'{where}.content' must be a string or an array of content parts",
            param=f"{where}.content",
        )
    if content is None and role in _CONTENT_REQUIRED:
        raise InvalidRequest(f"'{where}.content' is required", param=f"{where}.content")
    raise InvalidRequest(f"'{where}.tool_calls' must be an array", param=f"{where}.tool_calls")
