"""The canonical call: one client request in the gateway's own terms, whatever API it came in on.

A surface (gateway/surfaces/*) parses its wire format into a `Call`; the core routes, admits,
fails over and meters it; provider adapters translate it into their dialect.

Messages use the *canonical message schema*: the chat-message shape every upstream speaks
(DeepSeek's dialect), because all three providers are chat-completions servers and translating
into it is the one translation every call needs anyway:

    {"role": "system" | "user" | "assistant" | "tool",
     "content": str | [{"type": "text", "text": str}
                       | {"type": "image_url", "image_url": {"url": str}}] | None,
     "reasoning_content": str,              # assistant turns: the reasoning behind them
     "tool_calls": [{"id": str, "type": "function",
                     "function": {"name": str, "arguments": str (JSON)}}],   # assistant
     "tool_call_id": str}                   # tool turns

`params` holds generation parameters under their canonical names (`max_tokens`, `temperature`,
`top_p`, `stop` (list or string), `seed`, `tools` ([{"type": "function", "function": {name,
description, parameters}}]), `tool_choice` ("auto" | "none" | "required" | {"type":
"function", "function": {"name"}}), `parallel_tool_calls`, `response_format`, `user`, and any
field an OpenAI-format client sent that the gateway passes through for the provider to judge).
Thinking fields never appear in `params`: they are resolved into `thinking`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from gateway.models import ResolvedModel
from gateway.thinking import Thinking

Message = dict[str, Any]


@dataclass(slots=True)
class Call:
    api: str  # which surface: "openai.chat", "anthropic.messages", ...
    requested_model: str  # the name the client sent (surfaces that echo it use this)
    model: ResolvedModel  # canonical model and its default thinking
    thinking: Thinking
    messages: list[Message]
    params: dict[str, Any] = field(default_factory=dict)
    stream: bool = False
    user: str | None = None  # the client's end-user id, metered (never a metrics label)
    # The surface's own notes about this request (e.g. OpenAI's include_usage), opaque to the
    # core and handed back to the surface's renderers.
    options: Any = None
