"""Parsing `/api/chat` and `/api/generate` bodies into canonical calls.

Only what the gateway reads is type-checked (fields.py, messages.py); unknown fields are
ignored, as Ollama ignores them. `/api/generate` is a one-turn chat: `system` (unless `raw`)
then the `prompt` with its `images` as the user's message. `raw: true` sends the prompt as it
is, with no system message (no template applies on a chat upstream). `template` and `context`
are accepted and ignored; `suffix` (fill-in-the-middle) is a 400, since the providers' chat
APIs cannot fill a gap and an answer that ignored the suffix would look right and be wrong.

Neither endpoint preloads a model: an empty `messages` or `prompt` is a 400 (the models are
remote; there is nothing to load).

The time a call was parsed is kept in its options: the durations of the final line are
measured from it, by the gateway.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from gateway.core.call import Call, Message
from gateway.errors import InvalidRequest
from gateway.models import ModelCatalogue
from gateway.surfaces.body import json_object
from gateway.surfaces.ollama import fields
from gateway.surfaces.ollama.messages import chat_messages, user_message

API_CHAT = "ollama.chat"
API_GENERATE = "ollama.generate"


@dataclass(frozen=True, slots=True)
class OllamaOptions:
    """What the renderers need beyond the canonical call."""

    requested_model: str  # echoed as `model` on every line
    started_ns: int  # time.monotonic_ns() when the request was parsed
    generate: bool = False  # /api/generate: `response` instead of `message`


def options_of(call: Call) -> OllamaOptions:
    """The call's options, or ones made from the call itself when a caller built it by hand."""
    options = call.options
    if isinstance(options, OllamaOptions):
        return options
    return OllamaOptions(call.requested_model, time.monotonic_ns())


def parse_chat(raw: bytes, catalogue: ModelCatalogue) -> Call:
    body = json_object(raw)
    name = fields.model_name(body)
    messages = chat_messages(body.get("messages"))
    params = _params(body)
    tools = fields.tools(body.get("tools"))
    if tools:
        params["tools"] = tools
    return _call(API_CHAT, body, name, messages, params, catalogue, generate=False)


def parse_generate(raw: bytes, catalogue: ModelCatalogue) -> Call:
    body = json_object(raw)
    name = fields.model_name(body)
    prompt = _string(body, "prompt")
    system = _string(body, "system")
    raw_prompt = body.get("raw")
    if raw_prompt is not None and not isinstance(raw_prompt, bool):
        raise InvalidRequest("raw: must be a boolean", param="raw")
    if _string(body, "suffix"):
        raise InvalidRequest(
            "suffix: fill-in-the-middle is not supported by this gateway's chat models; send "
            "the text before the gap as the prompt without a suffix",
            param="suffix",
        )
    images = body.get("images")
    if not prompt and not images:
        raise InvalidRequest(
            "prompt: a prompt is required (the models are served remotely: there is nothing "
            "to load)",
            param="prompt",
        )
    messages: list[Message] = []
    if system and not raw_prompt:
        messages.append({"role": "system", "content": system})
    messages.append(user_message(prompt, images, "images"))
    return _call(API_GENERATE, body, name, messages, _params(body), catalogue, generate=True)


def _params(body: dict[str, Any]) -> dict[str, Any]:
    params: dict[str, Any] = {}
    fields.options(body.get("options"), params)
    response_format = fields.response_format(body.get("format"))
    if response_format is not None:
        params["response_format"] = response_format
    return params


def _call(api: str, body: dict[str, Any], name: str, messages: list[Message],
          params: dict[str, Any], catalogue: ModelCatalogue, *, generate: bool) -> Call:
    stream = fields.stream_flag(body)
    model = fields.resolve_model(name, catalogue)
    thinking = fields.thinking(body.get("think"), model.default_thinking, model.default_effort)
    options = OllamaOptions(name, time.monotonic_ns(), generate)
    return Call(api, name, model, thinking, messages, params, stream, None, options)


def _string(body: dict[str, Any], key: str) -> str:
    value = body.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise InvalidRequest(f"{key}: must be a string", param=key)
    return value
