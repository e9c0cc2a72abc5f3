"""Canonical answers as Ollama's objects, and the pieces its stream lines share.

A chat answer is `{model, created_at, message: {role, content, thinking?, tool_calls?}, done:
true, done_reason, <stats>}`; a generate answer has `response` (and `thinking`) instead of
`message`. Only choice 0 is shown; `model` is the name the client asked for.

Tool calls are `{id, function: {index, name, arguments}}` with `arguments` a JSON object: the
model's JSON text parsed, `{}` when empty, `{"_raw": text}` when it is not an object (so the
client still sees what the model wrote; messages.py turns it back into the text).

`done_reason`: stop -> stop, length -> length, tool_calls -> stop (as Ollama reports a turn
that called tools), content_filter -> stop, insufficient_system_resource (DeepSeek cut the
answer short) -> length in a whole answer (a stream ends in an error line instead).

The stats are the gateway's own measurements, in nanoseconds: `total_duration` from parsing
the request to the answer; `prompt_eval_duration` until the first token (failover, queueing
and the prompt's processing), `eval_duration` from it to the end (never 0, so eval_count /
eval_duration is a rate); `load_duration` 0, since no model is loaded here. A whole answer has
no first token to time: all of its wait is `eval_duration`. Counts are the upstream's usage
(`prompt_eval_count` = prompt tokens, `eval_count` = completion tokens, reasoning included).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import orjson

from gateway.core.answer import Answer, ToolCall
from gateway.core.call import Call
from gateway.surfaces.ollama.parse import options_of
from gateway.usage import Usage

_DONE_REASONS = {
    "stop": "stop",
    "length": "length",
    "tool_calls": "stop",
    "content_filter": "stop",
    "insufficient_system_resource": "length",
}
_RAW_KEY = "_raw"


def created_at() -> str:
    """Now, in the RFC 3339 form Ollama's clients parse."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def done_reason(finish_reason: str | None) -> str:
    return _DONE_REASONS.get(finish_reason or "stop", "stop")


def stats(reason: str, usage: Usage | None, started_ns: int, first_ns: int | None,
          ended_ns: int) -> dict[str, Any]:
    first = ended_ns if first_ns is None else min(max(first_ns, started_ns), ended_ns)
    return {
        "done_reason": reason,
        "total_duration": max(1, ended_ns - started_ns),
        "load_duration": 0,
        "prompt_eval_count": usage.prompt_tokens if usage is not None else 0,
        "prompt_eval_duration": first - started_ns,
        "eval_count": usage.completion_tokens if usage is not None else 0,
        "eval_duration": max(1, ended_ns - first),
    }


def tool_call(index: int, call_id: str, name: str, arguments: str) -> dict[str, Any]:
    return {"id": call_id,
            "function": {"index": index, "name": name, "arguments": arguments_object(arguments)}}


def arguments_object(arguments: str) -> dict[str, Any]:
    if not arguments.strip():
        return {}
    try:
        value = orjson.loads(arguments)
    except orjson.JSONDecodeError:
        return {_RAW_KEY: arguments}
    return value if isinstance(value, dict) else {_RAW_KEY: arguments}


def answer_line(model: str, generate: bool, content: str, reasoning: str | None, *,
                done: bool) -> dict[str, Any]:
    """One line (or whole answer) without its stats: `response` for generate, else
    `message`; `thinking` only when there is reasoning."""
    line: dict[str, Any] = {"model": model, "created_at": created_at()}
    if generate:
        line["response"] = content
        if reasoning:
            line["thinking"] = reasoning
    else:
        message: dict[str, Any] = {"role": "assistant", "content": content}
        if reasoning:
            message["thinking"] = reasoning
        line["message"] = message
    line["done"] = done
    return line


def render_answer(call: Call, answer: Answer, now_ns: int | None = None) -> bytes:
    options = options_of(call)
    ended = time.monotonic_ns() if now_ns is None else now_ns
    choice = next((c for c in answer.choices if c.index == 0), None)
    content = (choice.content or "") if choice is not None else ""
    reasoning = choice.reasoning if choice is not None else None
    calls: list[ToolCall] = choice.tool_calls if choice is not None else []
    line = answer_line(options.requested_model, options.generate, content, reasoning, done=True)
    if calls and not options.generate:
        line["message"]["tool_calls"] = [tool_call(k, c.id, c.name, c.arguments)
                                         for k, c in enumerate(calls)]
    reason = done_reason(choice.finish_reason if choice is not None else None)
    line.update(stats(reason, answer.usage, options.started_ns, options.started_ns, ended))
    return orjson.dumps(line)
