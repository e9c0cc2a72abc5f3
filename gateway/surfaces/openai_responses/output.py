"""The pieces of a response object, shared by whole answers (render.py) and streams
(stream.py): output items, usage, status and the envelope.

Output items come in the order the model produced them: a `reasoning` item (its text as one
`reasoning_text` part, `summary` empty, `encrypted_content` when asked for: reasoning.py), a
`message` with one `output_text` part, then one `function_call` per tool call (`call_id` the
upstream's call id; a namespace member's call carries `namespace` and its own `name`).

Status: finish_reason `length` -> incomplete (`max_output_tokens`), `content_filter` ->
incomplete (`content_filter`), `insufficient_system_resource` (DeepSeek cut the answer short)
-> failed with a `server_error`; anything else -> completed.

Usage as OpenAI counts it: `input_tokens` includes the cache hits, which are also
`input_tokens_details.cached_tokens`; `output_tokens` includes the reasoning tokens, also
`output_tokens_details.reasoning_tokens`.
"""

from __future__ import annotations

import time
from typing import Any

from gateway.surfaces.openai_responses import reasoning
from gateway.surfaces.openai_responses.ids import new_id
from gateway.surfaces.openai_responses.parse import ResponsesOptions
from gateway.surfaces.openai_responses.tools import Namespaced
from gateway.usage import Usage

Item = dict[str, Any]

CUT_SHORT = "insufficient_system_resource"
CUT_SHORT_MESSAGE = ("The upstream ran out of capacity in the middle of the answer "
                     "(finish_reason insufficient_system_resource); retry the request.")
_INCOMPLETE = {"length": "max_output_tokens", "content_filter": "content_filter"}


def reasoning_item(item_id: str, text: str, options: ResponsesOptions) -> Item:
    item: Item = {"type": "reasoning", "id": item_id, "summary": [],
                  "content": [{"type": "reasoning_text", "text": text}], "status": "completed"}
    if options.include_encrypted:
        item["encrypted_content"] = reasoning.encode(text)
    return item


def text_part(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def message_item(item_id: str, text: str, status: str = "completed") -> Item:
    return {"type": "message", "id": item_id, "role": "assistant", "status": status,
            "content": [text_part(text)]}


def function_call_item(item_id: str, call_id: str, name: str, arguments: str,
                       namespaced: Namespaced) -> Item:
    item: Item = {"type": "function_call", "id": item_id, "call_id": call_id,
                  "name": name, "arguments": arguments, "status": "completed"}
    member = namespaced.get(name)
    if member is not None:
        item["namespace"], item["name"] = member
    return item


def new_call_id() -> str:
    return new_id("call")


def status_for(finish_reason: str | None) -> tuple[str, dict[str, str] | None]:
    """(status, incomplete_details) for a finish reason (cut-short answers aside)."""
    reason = _INCOMPLETE.get(finish_reason or "")
    return ("incomplete", {"reason": reason}) if reason else ("completed", None)


def usage_object(usage: Usage | None) -> dict[str, Any]:
    usage = usage or Usage()
    return {
        "input_tokens": usage.prompt_tokens,
        "input_tokens_details": {"cached_tokens": usage.cache_hit_tokens or 0},
        "output_tokens": usage.completion_tokens,
        "output_tokens_details": {"reasoning_tokens": usage.reasoning_tokens or 0},
        "total_tokens": usage.total_tokens,
    }


def response_object(options: ResponsesOptions, status: str, output: list[Item],
                    usage: Usage | None = None, *, error: dict[str, Any] | None = None,
                    incomplete: dict[str, str] | None = None,
                    final: bool = True) -> dict[str, Any]:
    """The `response` object; `final` False for the in-progress snapshots of a stream."""
    return {
        "id": options.response_id,
        "object": "response",
        "created_at": options.created_at,
        "status": status,
        "background": False,
        "completed_at": int(time.time()) if final and status == "completed" else None,
        "error": error,
        "incomplete_details": incomplete,
        "model": options.requested_model,
        "output": output,
        "usage": usage_object(usage) if final else None,
        "store": options.storing,
        **options.echo,
    }
