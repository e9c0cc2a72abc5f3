"""A canonical answer as an Anthropic `message` object (the first choice only).

Content blocks come in the order Anthropic's models produce them: `thinking` (signed, so the
gateway can trust it when the client sends it back), `text`, then one `tool_use` per tool call.
A tool call's `input` is its arguments parsed as JSON; arguments that are empty are `{}`, and
arguments that are not a JSON object (the model wrote broken JSON) are `{"_raw": <the text>}`,
so the client still sees what the model wrote instead of a failed request.

`stop_reason`: stop -> end_turn (stop_sequence when the upstream said which stop sequence ended
the answer: a `stop_reason` / `matched_stop` string among the request's stop sequences, as
vLLM-style servers report it; DeepSeek does not, so a stop-sequence hit usually reads end_turn),
length -> max_tokens, tool_calls (or any answer holding tool calls) -> tool_use, content_filter
-> refusal, insufficient_system_resource (DeepSeek cut the answer short) -> max_tokens (a
whole answer has no better way to say it; a stream ends in an error event, see stream.py).

`usage.input_tokens` excludes the cache hits, which are `cache_read_input_tokens`; the gateway
never writes a cache, so `cache_creation_input_tokens` is 0.
"""

from __future__ import annotations

import secrets
from typing import Any

import orjson

from gateway.core.answer import Answer, ToolCall
from gateway.core.call import Call
from gateway.surfaces.anthropic_messages.parse import MessagesOptions
from gateway.surfaces.anthropic_messages.signatures import ThinkingSigner
from gateway.usage import Usage

_STOP_REASONS = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "content_filter": "refusal",
    "insufficient_system_resource": "max_tokens",
}


def options_of(call: Call) -> MessagesOptions:
    """The call's options, or ones made from the call itself when a caller built it by hand."""
    options = call.options
    if isinstance(options, MessagesOptions):
        return options
    return MessagesOptions(call.requested_model, 0)


def message_id(upstream_id: str | None) -> str:
    if upstream_id:
        return upstream_id if upstream_id.startswith("msg_") else "msg_" + upstream_id
    return "msg_" + secrets.token_hex(12)


def stop_reason(
    finish_reason: str | None,
    has_tool_calls: bool,
    native_choice: Any,
    stop_sequences: tuple[str, ...],
) -> tuple[str, str | None]:
    """(stop_reason, stop_sequence) for a choice's finish."""
    if has_tool_calls:
        return "tool_use", None
    if finish_reason in (None, "stop") and stop_sequences and isinstance(native_choice, dict):
        for key in ("stop_reason", "matched_stop"):
            matched = native_choice.get(key)
            if isinstance(matched, str) and matched in stop_sequences:
                return "stop_sequence", matched
    return _STOP_REASONS.get(finish_reason or "stop", "end_turn"), None


def usage_object(usage: Usage | None, estimated_input: int) -> dict[str, int]:
    if usage is None:
        return {"input_tokens": estimated_input, "output_tokens": 0,
                "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}
    hits = usage.cache_hit_tokens or 0
    return {
        "input_tokens": max(0, usage.prompt_tokens - hits),
        "output_tokens": usage.completion_tokens,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": hits,
    }


def tool_input(arguments: str) -> dict[str, Any]:
    if not arguments.strip():
        return {}
    try:
        value = orjson.loads(arguments)
    except orjson.JSONDecodeError:
        return {"_raw": arguments}
    return value if isinstance(value, dict) else {"_raw": arguments}


def _tool_use(call: ToolCall) -> dict[str, Any]:
    return {"type": "tool_use", "id": call.id, "name": call.name,
            "input": tool_input(call.arguments)}


def render_message(call: Call, answer: Answer, signer: ThinkingSigner) -> bytes:
    options = options_of(call)
    choice = next((c for c in answer.choices if c.index == 0), None)
    content: list[dict[str, Any]] = []
    reason, sequence = "end_turn", None
    if choice is not None:
        if choice.reasoning:
            content.append({"type": "thinking", "thinking": choice.reasoning,
                            "signature": signer.sign(choice.reasoning)})
        if choice.content:
            content.append({"type": "text", "text": choice.content})
        content.extend(_tool_use(tool_call) for tool_call in choice.tool_calls)
        native_choices = answer.native.get("choices")
        native = native_choices[0] if isinstance(native_choices, list) and native_choices else None
        reason, sequence = stop_reason(
            choice.finish_reason, bool(choice.tool_calls), native, options.stop_sequences
        )
    return orjson.dumps({
        "id": message_id(answer.id),
        "type": "message",
        "role": "assistant",
        "model": options.requested_model,
        "content": content,
        "stop_reason": reason,
        "stop_sequence": sequence,
        "usage": usage_object(answer.usage, options.input_tokens),
    })
