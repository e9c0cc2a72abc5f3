"""Whatever a client sends to /v1/messages, parsing ends in a canonical call or a gateway
error (a 4xx the surface renders), never another exception: generated bodies that are
Messages-shaped in every field, with wrong types, odd blocks and junk mixed in."""

from __future__ import annotations

from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.errors import GatewayError
from gateway.surfaces.anthropic_messages.errors import render_error
from tests.surfaces.anthropic_messages.support import parse

junk = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.floats(allow_nan=False)
    | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner,
                                                                 max_size=3),
    max_leaves=8,
)
block_types = st.sampled_from(["text", "image", "tool_use", "tool_result", "thinking",
                               "redacted_thinking", "document", "tool_reference", "search"])
block = st.fixed_dictionaries(
    {"type": block_types},
    optional={"text": junk | st.text(), "id": junk, "name": junk, "input": junk,
              "tool_use_id": junk, "content": junk, "is_error": junk, "thinking": junk,
              "signature": junk, "source": junk | st.fixed_dictionaries(
                  {"type": st.sampled_from(["base64", "url", "text", "content", "file"])},
                  optional={"media_type": junk, "data": junk, "url": junk})},
)
message = st.fixed_dictionaries(
    {"role": st.sampled_from(["user", "user", "assistant", "system"]),
     "content": st.text() | st.lists(block, max_size=4)})
odd_message = st.fixed_dictionaries(
    {"role": st.sampled_from(["tool", "bot"]) | junk,
     "content": st.lists(block | junk, max_size=4) | junk})
request = st.fixed_dictionaries(
    {"model": st.sampled_from(["claude-sonnet-4-5", "claude-opus-4-1", "deepseek-v4-flash",
                               "gpt-4o"]),
     "max_tokens": st.integers(1, 100_000),
     "messages": st.lists(message, min_size=1, max_size=4)},
    optional={"system": st.text() | st.lists(block, max_size=2) | junk,
              "tools": st.lists(st.fixed_dictionaries(
                  {"name": junk | st.text(max_size=5)},
                  optional={"type": junk | st.sampled_from(["custom", "web_search_20250305"]),
                            "input_schema": junk, "defer_loading": junk}), max_size=3) | junk,
              "tool_choice": junk | st.fixed_dictionaries(
                  {"type": st.sampled_from(["auto", "any", "tool", "none", "x"])},
                  optional={"name": junk, "disable_parallel_tool_use": junk}),
              "thinking": junk | st.fixed_dictionaries(
                  {"type": st.sampled_from(["enabled", "disabled", "adaptive", "x"])},
                  optional={"budget_tokens": junk}),
              "output_config": junk, "stop_sequences": junk, "temperature": junk,
              "top_p": junk, "top_k": junk, "metadata": junk, "stream": junk},
)
# Half the bodies are Messages-shaped with junk in optional fields; the other half break a
# required field too.
request = request | st.builds(
    lambda body, field, value: {**body, field: value}, request,
    st.sampled_from(["model", "max_tokens", "messages"]), junk | st.lists(odd_message, max_size=3))


@given(data=request)
@settings(max_examples=600, deadline=None, derandomize=True, database=None,
          suppress_health_check=list(HealthCheck))
def test_parsing_never_fails_with_anything_but_a_gateway_error(data: dict[str, Any]) -> None:
    try:
        call = parse(orjson.dumps(data))
    except GatewayError as err:
        status, _, rendered = render_error(err)
        assert 400 <= status < 500, err
        assert orjson.loads(rendered)["type"] == "error"
        return
    assert call.messages and call.api == "anthropic.messages"
    orjson.dumps(call.params)  # what a provider will be sent is serialisable
