"""Responses requests in, canonical calls out: input items, tools, parameters, thinking, and
the 400s that name the field."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from gateway.errors import InvalidRequest, ModelNotFound
from gateway.surfaces.openai_responses import reasoning
from tests.surfaces.openai_responses.support import WEATHER, body, options, parse, user


def refused(data: dict[str, Any] | bytes) -> InvalidRequest:
    with pytest.raises(InvalidRequest) as caught:
        parse(data)
    return caught.value


# ---- input ---------------------------------------------------------------------------------


def test_a_string_input_with_instructions() -> None:
    call = parse(body(instructions="Be brief.", input="Hi"))
    assert call.api == "openai.responses" and call.requested_model == "deepseek-v4-flash"
    assert call.messages == [{"role": "system", "content": "Be brief."},
                             {"role": "user", "content": "Hi"}]
    items = options(call).input_items
    assert len(items) == 1 and items[0]["id"].startswith("msg_")
    assert items[0]["content"] == [{"type": "input_text", "text": "Hi"}]
    assert items[0]["role"] == "user" and items[0]["type"] == "message"


def test_messages_in_every_role_and_the_short_form() -> None:
    call = parse(body(input=[
        {"role": "developer", "content": "Rules."},
        {"role": "system", "content": [{"type": "input_text", "text": "More rules."}]},
        {"role": "user", "content": [{"type": "input_text", "text": "a"},
                                     {"type": "input_text", "text": "b"}]},
        {"type": "message", "role": "assistant",
         "content": [{"type": "output_text", "text": "Sure", "annotations": []}]},
        {"role": "assistant", "content": [{"type": "refusal", "refusal": " but no."}]},
    ]))
    assert call.messages == [
        {"role": "system", "content": "Rules."},
        {"role": "system", "content": "More rules."},
        {"role": "user", "content": "a\n\nb"},
        {"role": "assistant", "content": "Sure but no."},
    ]
    kinds = [item["type"] for item in options(call).input_items]
    assert kinds == ["message"] * 5  # the short form gets its type
    assert options(call).input_items[3]["content"][0]["annotations"] == []  # kept as sent


def test_images_are_image_url_parts_and_files_are_refused() -> None:
    call = parse(body(input=[{"role": "user", "content": [
        {"type": "input_text", "text": "What is this?"},
        {"type": "input_image", "image_url": "data:image/png;base64,AAAA", "detail": "low"},
    ]}]))
    assert call.messages[0]["content"] == [
        {"type": "text", "text": "What is this?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA",
                                            "detail": "low"}}]
    error = refused(body(input=[{"role": "user", "content": [
        {"type": "input_image", "file_id": "file-1"}]}]))
    assert error.param == "input[0].content[0].image_url" and "file_id" in error.message
    error = refused(body(input=[{"role": "user", "content": [
        {"type": "input_file", "file_data": "..."}]}]))
    assert error.param == "input[0].content[0].type" and "input_file" in error.message
    error = refused(body(input=[{"role": "system", "content": [
        {"type": "input_image", "image_url": "https://x/y.png"}]}]))
    assert error.param == "input[0].content" and "text only" in error.message


def test_a_tool_loop_becomes_one_assistant_turn_and_tool_messages() -> None:
    call = parse(body(input=[
        user("weather in Paris and Rome?"),
        {"type": "reasoning", "id": "rs_1", "summary": [],
         "content": [{"type": "reasoning_text", "text": "Two cities, "},
                     {"type": "reasoning_text", "text": "two calls."}]},
        {"type": "message", "role": "assistant",
         "content": [{"type": "output_text", "text": "Checking."}]},
        {"type": "function_call", "call_id": "c1", "name": "get_weather",
         "arguments": '{"city":"Paris"}'},
        {"type": "function_call", "call_id": "c2", "name": "get_weather",
         "arguments": '{"city":"Rome"}', "id": "fc_2", "status": "completed"},
        {"type": "function_call_output", "call_id": "c1", "output": "sunny"},
        {"type": "function_call_output", "call_id": "c2",
         "output": [{"type": "input_text", "text": "rain"}]},
    ]))
    assert call.messages == [
        {"role": "user", "content": "weather in Paris and Rome?"},
        {"role": "assistant", "content": "Checking.",
         "reasoning_content": "Two cities, two calls.",
         "tool_calls": [
             {"id": "c1", "type": "function",
              "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}},
             {"id": "c2", "type": "function",
              "function": {"name": "get_weather", "arguments": '{"city":"Rome"}'}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
        {"role": "tool", "tool_call_id": "c2", "content": "rain"},
    ]
    ids = [item["id"] for item in options(call).input_items]
    assert ids[1] == "rs_1" and ids[4] == "fc_2"  # the client's own ids are kept
    assert ids[3].startswith("fc_") and ids[5].startswith("fco_")


def test_reasoning_after_output_starts_the_next_assistant_turn() -> None:
    call = parse(body(input=[
        user("go"),
        {"type": "reasoning", "summary": [], "content": [
            {"type": "reasoning_text", "text": "first"}]},
        {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"},
        {"type": "reasoning", "summary": [], "content": [
            {"type": "reasoning_text", "text": "second"}]},
        {"type": "function_call", "call_id": "c2", "name": "f", "arguments": "{}"},
    ]))
    turns = [m for m in call.messages if m["role"] == "assistant"]
    assert [t["reasoning_content"] for t in turns] == ["first", "second"]
    assert [t["tool_calls"][0]["id"] for t in turns] == ["c1", "c2"]
    assert all(t["content"] is None for t in turns)


def test_reasoning_comes_back_from_our_encrypted_content_only() -> None:
    ours = {"type": "reasoning", "summary": [], "encrypted_content": reasoning.encode("mine")}
    foreign = {"type": "reasoning", "summary": [{"type": "summary_text", "text": "a summary"}],
               "encrypted_content": "gAAAAB-openai-ciphertext"}
    call_item = {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"}
    assert parse(body(input=[user("x"), ours, call_item])).messages[1][
        "reasoning_content"] == "mine"
    assistant = parse(body(input=[user("x"), foreign, call_item])).messages[1]
    assert "reasoning_content" not in assistant  # a summary is not the reasoning itself
    lone = parse(body(input=[user("x"), {"type": "reasoning", "summary": [],
                                         "encrypted_content": None}, user("y")]))
    assert [m["role"] for m in lone.messages] == ["user", "user"]  # reasoning-only: dropped


def test_images_in_tool_output_follow_the_tool_messages() -> None:
    call = parse(body(input=[
        user("shot?"),
        {"type": "function_call", "call_id": "c1", "name": "screenshot", "arguments": "{}"},
        {"type": "function_call", "call_id": "c2", "name": "screenshot", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "c1", "output": [
            {"type": "input_text", "text": "here"},
            {"type": "input_image", "image_url": "https://x/1.png"}]},
        {"type": "function_call_output", "call_id": "c2", "output": "none"},
    ]))
    assert [m["role"] for m in call.messages] == ["user", "assistant", "tool", "tool", "user"]
    assert call.messages[2]["content"] == "here\n\n(the image output follows)"
    assert call.messages[4]["content"] == [
        {"type": "text", "text": "Image output of tool call c1:"},
        {"type": "image_url", "image_url": {"url": "https://x/1.png"}}]


def test_namespaced_calls_use_the_flat_name() -> None:
    call = parse(body(input=[
        user("spawn"),
        {"type": "function_call", "call_id": "c1", "namespace": "agents", "name": "spawn",
         "arguments": "{}"}]))
    assert call.messages[1]["tool_calls"][0]["function"]["name"] == "agents__spawn"


@pytest.mark.parametrize(("value", "param", "words"), [
    (None, "input", "string or a non-empty array"),
    ([], "input", "non-empty array"),
    (["hi"], "input[0]", "must be an object"),
    ([{"type": "item_reference", "id": "msg_1"}], "input[0].type", "item_reference"),
    ([{"type": "web_search_call", "id": "ws_1"}], "input[0].type", "web_search_call"),
    ([{"role": "tool", "content": "x"}], "input[0].role", "user, assistant, system"),
    ([{"role": "user", "content": 3}], "input[0].content", "string or an array"),
    ([{"role": "user", "content": [{"type": "audio"}]}], "input[0].content[0].type", "audio"),
    ([{"type": "function_call", "name": "f", "arguments": "{}"}], "input[0].call_id", "string"),
    ([{"type": "function_call", "call_id": "c", "name": "f", "arguments": {}}],
     "input[0].arguments", "string"),
    ([{"type": "function_call_output", "call_id": "c", "output": 3}], "input[0].output",
     "string or an array"),
    ([{"type": "reasoning", "content": [{"type": "reasoning_text"}]}], "input[0].content",
     "need a text"),
])
def test_bad_input_is_a_400_naming_the_field(value: Any, param: str, words: str) -> None:
    error = refused(body(input=value))
    assert error.param == param and words in error.message, error.message


# ---- tools ---------------------------------------------------------------------------------


def test_function_tools_and_namespaces() -> None:
    namespace = {"type": "namespace", "name": "agents", "description": "Sub-agents",
                 "tools": [{"type": "function", "name": "spawn", "strict": False,
                            "parameters": {"type": "object", "properties": {}}},
                           {"type": "function", "name": "close"}]}
    call = parse(body(tools=[{**WEATHER, "strict": True}, namespace], tool_choice="required",
                      parallel_tool_calls=False))
    assert call.params["tools"] == [
        {"type": "function", "function": {"name": "get_weather",
                                          "description": "Weather for a city",
                                          "parameters": WEATHER["parameters"]}},
        {"type": "function", "function": {"name": "agents__spawn",
                                          "parameters": {"type": "object", "properties": {}}}},
        {"type": "function", "function": {"name": "agents__close",
                                          "parameters": {"type": "object", "properties": {}}}},
    ]
    assert call.params["tool_choice"] == "required"
    assert call.params["parallel_tool_calls"] is False
    assert options(call).namespaced == {"agents__spawn": ("agents", "spawn"),
                                        "agents__close": ("agents", "close")}
    assert options(call).echo["tools"][1] == namespace  # echoed as the client sent them


@pytest.mark.parametrize("kind", ["web_search", "file_search", "code_interpreter",
                                  "image_generation", "mcp", "computer_use_preview",
                                  "local_shell", "custom"])
def test_tools_the_gateway_cannot_run_are_refused_by_name(kind: str) -> None:
    error = refused(body(tools=[WEATHER, {"type": kind, "name": "x"}]))
    assert error.status == 400 and error.param == "tools[1].type"
    assert repr(kind) in error.message and "function tools" in error.message


def test_web_search_refusal_tells_codex_users_what_to_set() -> None:
    error = refused(body(tools=[{"type": "web_search", "external_web_access": False}]))
    assert 'web_search = "disabled"' in error.message


def test_tool_choice_forms() -> None:
    spawn = {"type": "namespace", "name": "agents", "tools": [{"type": "function",
                                                              "name": "spawn"}]}
    tools = [WEATHER, spawn]
    forced = parse(body(tools=tools, tool_choice={"type": "function", "name": "get_weather"}))
    assert forced.params["tool_choice"] == {"type": "function",
                                            "function": {"name": "get_weather"}}
    member = parse(body(tools=tools, tool_choice={"type": "function", "namespace": "agents",
                                                  "name": "spawn"}))
    assert member.params["tool_choice"]["function"]["name"] == "agents__spawn"
    allowed = parse(body(tools=tools, tool_choice={
        "type": "allowed_tools", "mode": "required",
        "tools": [{"type": "function", "name": "get_weather"}]}))
    assert allowed.params["tool_choice"] == "required"
    assert [t["function"]["name"] for t in allowed.params["tools"]] == ["get_weather"]
    assert parse(body(tools=tools, tool_choice="none")).params["tool_choice"] == "none"
    assert "tool_choice" not in parse(body(tools=tools)).params


@pytest.mark.parametrize(("choice", "param"), [
    ("sometimes", "tool_choice"),
    ({"type": "function", "name": "nope"}, "tool_choice.name"),
    ({"type": "web_search"}, "tool_choice.type"),
    ({"type": "allowed_tools", "mode": "any", "tools": []}, "tool_choice.mode"),
    ({"type": "allowed_tools", "tools": [{"type": "mcp"}]}, "tool_choice.tools[0].type"),
])
def test_bad_tool_choices(choice: Any, param: str) -> None:
    assert refused(body(tools=[WEATHER], tool_choice=choice)).param == param


def test_duplicate_and_malformed_tools() -> None:
    assert "more than one" in refused(body(tools=[WEATHER, WEATHER])).message
    assert refused(body(tools={"a": 1})).param == "tools"
    assert refused(body(tools=[{"type": "function"}])).param == "tools[0].name"
    assert refused(body(tools=[{**WEATHER, "parameters": "x"}])).param == "tools[0].parameters"
    assert refused(body(tools=[{"type": "namespace", "name": "n",
                                "tools": [{"type": "web_search"}]}])).param == \
        "tools[0].tools[0].type"
    assert refused(body(tools=[{"name": "f"}])).param == "tools[0].type"


# ---- parameters and thinking ---------------------------------------------------------------


def test_parameters_map_to_their_chat_names() -> None:
    call = parse(body(temperature=0.2, top_p=0.9, max_output_tokens=64, user="u-1",
                      metadata={"team": "a"}, prompt_cache_key="k", client_metadata={"x": 1},
                      truncation="auto", service_tier="auto", store=False, stream=True,
                      include=["reasoning.encrypted_content"]))
    assert call.params == {"temperature": 0.2, "top_p": 0.9, "max_tokens": 64, "user": "u-1"}
    assert call.user == "u-1" and call.stream is True
    opts = options(call)
    assert opts.store is False and opts.include_encrypted is True
    assert opts.echo["metadata"] == {"team": "a"} and opts.echo["max_output_tokens"] == 64
    assert parse(body(safety_identifier="s-1")).user == "s-1"
    defaults = options(parse(body()))
    assert defaults.store is True and defaults.include_encrypted is False


def test_text_formats_become_response_format() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "string"}}}
    call = parse(body(text={"format": {"type": "json_schema", "name": "thing", "schema": schema,
                                       "strict": True}, "verbosity": "low"}))
    assert call.params["response_format"] == {
        "type": "json_schema", "json_schema": {"name": "thing", "schema": schema,
                                               "strict": True}}
    assert options(call).echo["text"]["verbosity"] == "low"
    assert parse(body(text={"format": {"type": "json_object"}})).params[
        "response_format"] == {"type": "json_object"}
    assert "response_format" not in parse(body(text={"format": {"type": "text"}})).params
    assert refused(body(text={"format": {"type": "json_schema", "schema": schema}})).param == \
        "text.format.name"
    assert refused(body(text={"format": {"type": "yaml"}})).param == "text.format.type"


@pytest.mark.parametrize(("reasoning_field", "enabled", "effort"), [
    (None, True, None),  # the model's default: DeepSeek V4 thinks
    ({"summary": "auto"}, True, None),
    ({"effort": "none"}, False, None),
    # folded to DeepSeek's levels (issue 12): minimal is Low, xhigh the top, Think Max
    ({"effort": "minimal"}, True, "low"),
    ({"effort": "medium"}, True, "high"),
    ({"effort": "high", "summary": "detailed"}, True, "high"),
    ({"effort": "xhigh"}, True, "max"),
])
def test_reasoning_effort_is_the_thinking_mode(reasoning_field: Any, enabled: bool,
                                               effort: str | None) -> None:
    fields = {} if reasoning_field is None else {"reasoning": reasoning_field}
    thinking = parse(body(**fields)).thinking
    assert (thinking.enabled, thinking.effort) == (enabled, effort)


def test_a_model_without_default_thinking() -> None:
    assert parse(body(model="deepseek-chat")).thinking.enabled is False
    assert parse(body(model="deepseek-chat", reasoning={"effort": "low"})).thinking.enabled


@pytest.mark.parametrize(("fields", "param"), [
    ({"model": None}, "model"),
    ({"temperature": "hot"}, "temperature"),
    ({"max_output_tokens": 0}, "max_output_tokens"),
    ({"max_output_tokens": True}, "max_output_tokens"),
    ({"parallel_tool_calls": "yes"}, "parallel_tool_calls"),
    ({"stream": "yes"}, "stream"),
    ({"store": 1}, "store"),
    ({"instructions": ["a"]}, "instructions"),
    ({"metadata": {"k": 1}}, "metadata"),
    ({"metadata": {str(i): "v" for i in range(17)}}, "metadata"),
    ({"previous_response_id": 5}, "previous_response_id"),
    ({"include": "all"}, "include"),
    ({"reasoning": {"effort": "extreme"}}, "reasoning.effort"),
    ({"user": 7}, "user"),
    ({"background": True}, "background"),
    ({"conversation": "conv_1"}, "conversation"),
    ({"prompt": {"id": "pmpt_1"}}, "prompt"),
])
def test_bad_fields_are_a_400_naming_them(fields: dict[str, Any], param: str) -> None:
    assert refused(body(**fields)).param == param


def test_no_input_an_unknown_model_and_bad_json() -> None:
    assert refused({"model": "deepseek-v4-flash"}).param == "input"
    with pytest.raises(ModelNotFound):
        parse(body(model="gpt-5.5"))
    assert "not valid JSON" in refused(b"{nope").message
    assert "JSON object" in refused(orjson.dumps([1])).message


@pytest.mark.parametrize("role", [["user"], {"r": 1}])
def test_a_role_that_is_not_a_string_is_a_400_not_a_crash(role: Any) -> None:
    error = refused(body(input=[{"role": role, "content": "x"}]))
    assert error.param is not None and error.param.endswith(".role")
