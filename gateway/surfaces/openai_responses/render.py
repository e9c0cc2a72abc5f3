"""A whole canonical answer as a `response` object (the first choice only; output.py says
what the items and the status are), stored when the request asked for it."""

from __future__ import annotations

from typing import Any

import orjson

from gateway.core.answer import Answer
from gateway.core.call import Call
from gateway.surfaces.openai_responses.ids import new_id
from gateway.surfaces.openai_responses.output import (
    CUT_SHORT,
    CUT_SHORT_MESSAGE,
    Item,
    function_call_item,
    message_item,
    new_call_id,
    reasoning_item,
    response_object,
    status_for,
)
from gateway.surfaces.openai_responses.parse import ResponsesOptions


def options_of(call: Call) -> ResponsesOptions:
    options = call.options
    assert isinstance(options, ResponsesOptions), "not a call parsed by this surface"
    return options


def answer_response(call: Call, answer: Answer) -> dict[str, Any]:
    options = options_of(call)
    choice = next((c for c in answer.choices if c.index == 0), None)
    output: list[Item] = []
    status, incomplete, error = "completed", None, None
    if choice is not None:
        if choice.reasoning:
            output.append(reasoning_item(new_id("rs"), choice.reasoning, options))
        status, incomplete = status_for(choice.finish_reason)
        if choice.content:
            output.append(message_item(new_id("msg"), choice.content,
                                       "incomplete" if incomplete else "completed"))
        for tool_call in choice.tool_calls:
            output.append(function_call_item(new_id("fc"), tool_call.id or new_call_id(),
                                             tool_call.name, tool_call.arguments,
                                             options.namespaced))
        if choice.finish_reason == CUT_SHORT:
            status, error = "failed", {"code": "server_error", "message": CUT_SHORT_MESSAGE}
    return response_object(options, status, output, answer.usage, error=error,
                           incomplete=incomplete)


def render_response(response: dict[str, Any]) -> bytes:
    return orjson.dumps(response)
