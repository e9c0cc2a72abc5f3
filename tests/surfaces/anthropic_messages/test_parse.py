"""A Messages request in, a canonical call out."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from gateway.errors import InvalidRequest, ModelNotFound
from gateway.surfaces.anthropic_messages.parse import MessagesOptions
from gateway.surfaces.anthropic_messages.signatures import ThinkingSigner
from gateway.thinking import Thinking
from tests.surfaces.anthropic_messages.support import SIGNER, assistant, body, parse, user

PNG = "iVBORw0KGgo="


def test_a_minimal_request_becomes_a_call() -> None:
    call = parse(body())
    assert call.api == "anthropic.messages"
    assert call.requested_model == "claude-sonnet-4-5"
    assert call.model.canonical == "deepseek-v4-flash"
    assert call.messages == [{"role": "user", "content": "Hello there"}]
    assert call.params == {"max_tokens": 1024}
    assert call.stream is False
    assert call.user is None
    assert isinstance(call.options, MessagesOptions)
    assert call.options.requested_model == "claude-sonnet-4-5"
    assert call.options.input_tokens > 0


def test_unknown_fields_are_tolerated() -> None:
    call = parse(body(context_management={"edits": []}, service_tier="auto", x_claude_code=1))
    assert "context_management" not in call.params
    assert "service_tier" not in call.params


def test_string_system_becomes_one_system_message_first() -> None:
    call = parse(body(system="Be brief."))
    assert call.messages[0] == {"role": "system", "content": "Be brief."}
    assert call.messages[1]["role"] == "user"


def test_system_text_blocks_are_joined_and_cache_control_ignored() -> None:
    call = parse(body(system=[
        {"type": "text", "text": "You are Claude Code."},
        {"type": "text", "text": "Follow the rules.", "cache_control": {"type": "ephemeral"}},
    ]))
    assert call.messages[0] == {
        "role": "system", "content": "You are Claude Code.\n\nFollow the rules.",
    }
    assert len([m for m in call.messages if m["role"] == "system"]) == 1


def test_empty_system_adds_no_message() -> None:
    assert [m["role"] for m in parse(body(system="")).messages] == ["user"]


def test_system_role_messages_stay_system_messages_in_place() -> None:
    call = parse(body(system="top", messages=[
        {"role": "user", "content": "first"},
        {"role": "system", "content": [{"type": "text", "text": "# Environment",
                                        "cache_control": {"type": "ephemeral"}},
                                       {"type": "text", "text": "cwd: /tmp"}]},
        {"role": "system", "content": "plain"},
    ]))
    assert call.messages == [
        {"role": "system", "content": "top"},
        {"role": "user", "content": "first"},
        {"role": "system", "content": "# Environment\n\ncwd: /tmp"},
        {"role": "system", "content": "plain"},
    ]


def test_user_text_blocks_become_one_string() -> None:
    call = parse(body(messages=[user(
        {"type": "text", "text": "<system-reminder>x</system-reminder>"},
        {"type": "text", "text": "Fix the bug", "cache_control": {"type": "ephemeral"}},
    )]))
    assert call.messages == [
        {"role": "user", "content": "<system-reminder>x</system-reminder>\n\nFix the bug"},
    ]


def test_base64_and_url_images_become_image_url_parts() -> None:
    call = parse(body(messages=[user(
        {"type": "text", "text": "What is this?"},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}},
        {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}},
    )]))
    assert call.messages == [{"role": "user", "content": [
        {"type": "text", "text": "What is this?"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}},
    ]}]


def test_text_documents_become_text_with_their_title() -> None:
    call = parse(body(messages=[user(
        {"type": "document", "title": "notes.txt",
         "source": {"type": "text", "media_type": "text/plain", "data": "line one"}},
        {"type": "document",
         "source": {"type": "content", "content": [{"type": "text", "text": "part a"},
                                                   {"type": "text", "text": "part b"}]}},
        {"type": "text", "text": "Summarise"},
    )]))
    assert call.messages == [
        {"role": "user", "content": "notes.txt\n\nline one\n\npart a\n\npart b\n\nSummarise"},
    ]


@pytest.mark.parametrize("source", [
    {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0="},
    {"type": "url", "url": "https://example.com/a.pdf"},
    {"type": "file", "file_id": "file_1"},
])
def test_pdf_documents_are_a_clear_400(source: dict[str, Any]) -> None:
    with pytest.raises(InvalidRequest) as err:
        parse(body(messages=[user({"type": "document", "source": source})]))
    assert err.value.status == 400
    assert err.value.param == "messages[0].content[0].source.type"
    assert "PDF" in err.value.message


def test_assistant_tool_use_becomes_tool_calls() -> None:
    call = parse(body(messages=[
        {"role": "user", "content": "List files"},
        assistant(
            {"type": "text", "text": "Let me look."},
            {"type": "tool_use", "id": "toolu_1", "name": "ls", "input": {"path": "/tmp"}},
            {"type": "tool_use", "id": "toolu_2", "name": "pwd", "input": {}},
        ),
    ]))
    turn = call.messages[1]
    assert turn["role"] == "assistant"
    assert turn["content"] == "Let me look."
    assert [c["id"] for c in turn["tool_calls"]] == ["toolu_1", "toolu_2"]
    first = turn["tool_calls"][0]
    assert first["type"] == "function"
    assert first["function"]["name"] == "ls"
    assert orjson.loads(first["function"]["arguments"]) == {"path": "/tmp"}
    assert orjson.loads(turn["tool_calls"][1]["function"]["arguments"]) == {}


def test_a_tool_only_assistant_turn_has_no_content() -> None:
    call = parse(body(messages=[
        {"role": "user", "content": "go"},
        assistant({"type": "tool_use", "id": "t", "name": "run", "input": {"x": 1}}),
    ]))
    assert call.messages[1]["content"] is None


def test_tool_results_become_tool_messages_before_the_rest_of_the_turn() -> None:
    call = parse(body(messages=[
        {"role": "user", "content": "go"},
        assistant(
            {"type": "tool_use", "id": "toolu_a", "name": "read", "input": {}},
            {"type": "tool_use", "id": "toolu_b", "name": "read", "input": {}},
        ),
        user(
            {"type": "text", "text": "and then?"},
            {"type": "tool_result", "tool_use_id": "toolu_a", "content": "alpha"},
            {"type": "tool_result", "tool_use_id": "toolu_b",
             "content": [{"type": "text", "text": "beta"}, {"type": "text", "text": "gamma"}]},
        ),
    ]))
    assert call.messages[2:] == [
        {"role": "tool", "tool_call_id": "toolu_a", "content": "alpha"},
        {"role": "tool", "tool_call_id": "toolu_b", "content": "beta\n\ngamma"},
        {"role": "user", "content": "and then?"},
    ]


def test_a_turn_of_only_tool_results_adds_no_user_message() -> None:
    call = parse(body(messages=[
        {"role": "user", "content": "go"},
        assistant({"type": "tool_use", "id": "t1", "name": "x", "input": {}}),
        user({"type": "tool_result", "tool_use_id": "t1", "content": "done"}),
    ]))
    assert [m["role"] for m in call.messages] == ["user", "assistant", "tool"]


def test_error_tool_results_are_prefixed() -> None:
    call = parse(body(messages=[
        {"role": "user", "content": "go"},
        assistant({"type": "tool_use", "id": "t1", "name": "x", "input": {}}),
        user({"type": "tool_result", "tool_use_id": "t1", "content": "file not found",
              "is_error": True}),
    ]))
    assert call.messages[2] == {
        "role": "tool", "tool_call_id": "t1", "content": "Error: file not found",
    }


def test_images_in_tool_results_move_to_the_following_user_message() -> None:
    image = {"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                         "data": PNG}}
    call = parse(body(messages=[
        {"role": "user", "content": "screenshot"},
        assistant({"type": "tool_use", "id": "t1", "name": "shot", "input": {}}),
        user({"type": "tool_result", "tool_use_id": "t1",
              "content": [{"type": "text", "text": "captured"}, image]},
             {"type": "text", "text": "describe it"}),
    ]))
    tool, follow = call.messages[2], call.messages[3]
    assert tool["role"] == "tool"
    assert tool["content"].startswith("captured")
    assert "image" in tool["content"]
    assert follow["role"] == "user"
    parts = follow["content"]
    assert parts[0]["type"] == "text" and "t1" in parts[0]["text"]
    assert parts[1] == {"type": "image_url",
                        "image_url": {"url": f"data:image/png;base64,{PNG}"}}
    assert parts[2] == {"type": "text", "text": "describe it"}


def test_signed_thinking_becomes_reasoning_content() -> None:
    thought = "The user wants a listing; call ls."
    more = " Then read the file."
    call = parse(body(messages=[
        {"role": "user", "content": "go"},
        assistant(
            {"type": "thinking", "thinking": thought, "signature": SIGNER.sign(thought)},
            {"type": "tool_use", "id": "t1", "name": "ls", "input": {}},
            {"type": "thinking", "thinking": more, "signature": SIGNER.sign(more)},
        ),
    ]))
    assert call.messages[1]["reasoning_content"] == thought + more
    assert call.messages[1]["tool_calls"][0]["id"] == "t1"


def test_a_signature_of_other_text_does_not_verify() -> None:
    call = parse(body(messages=[
        {"role": "user", "content": "go"},
        assistant({"type": "thinking", "thinking": "edited thought",
                   "signature": SIGNER.sign("original thought")},
                  {"type": "text", "text": "Hi"}),
    ]))
    assert "reasoning_content" not in call.messages[1]


@pytest.mark.parametrize("signature", [
    "EqQBCkgIARABGAIiQL...anthropic",  # signed by Anthropic, not by us
    "",
    None,
])
def test_unverified_and_redacted_thinking_is_dropped(signature: str | None) -> None:
    thinking: dict[str, Any] = {"type": "thinking", "thinking": "not ours"}
    if signature is not None:
        thinking["signature"] = signature
    call = parse(body(messages=[
        {"role": "user", "content": "go"},
        assistant(thinking, {"type": "redacted_thinking", "data": "abc"},
                  {"type": "text", "text": "Hi"}),
    ]))
    assert call.messages[1] == {"role": "assistant", "content": "Hi"}


def test_thinking_signed_with_another_key_is_dropped() -> None:
    other = ThinkingSigner(b"another replica's key")
    call = parse(body(messages=[
        {"role": "user", "content": "go"},
        assistant({"type": "thinking", "thinking": "t", "signature": other.sign("t")},
                  {"type": "text", "text": "Hi"}),
    ]))
    assert "reasoning_content" not in call.messages[1]


def test_parameters_map_to_canonical_names() -> None:
    call = parse(body(
        stop_sequences=["\n\nHuman:", "END"], temperature=0.2, top_p=0.9, top_k=40,
        metadata={"user_id": "user-42"}, stream=True,
    ))
    assert call.params == {
        "max_tokens": 1024, "stop": ["\n\nHuman:", "END"], "temperature": 0.2, "top_p": 0.9,
        "top_k": 40, "user": "user-42",
    }
    assert call.user == "user-42"
    assert call.stream is True
    assert isinstance(call.options, MessagesOptions)
    assert call.options.stop_sequences == ("\n\nHuman:", "END")


def test_custom_tools_become_function_tools() -> None:
    schema = {"type": "object", "properties": {"path": {"type": "string"}}}
    call = parse(body(tools=[
        {"name": "read", "description": "Read a file", "input_schema": schema,
         "cache_control": {"type": "ephemeral"}},
        {"type": "custom", "name": "noop", "input_schema": {"type": "object"}},
    ]))
    assert call.params["tools"] == [
        {"type": "function",
         "function": {"name": "read", "description": "Read a file", "parameters": schema}},
        {"type": "function", "function": {"name": "noop", "parameters": {"type": "object"}}},
    ]


@pytest.mark.parametrize("tool", [
    {"type": "web_search_20250305", "name": "web_search", "max_uses": 5},
    {"type": "web_fetch_20250910", "name": "web_fetch"},
    {"type": "code_execution_20250825", "name": "code_execution"},
    {"type": "computer_20250124", "name": "computer", "display_width_px": 1024},
    {"type": "bash_20250124", "name": "bash"},
    {"type": "text_editor_20250728", "name": "str_replace_based_edit_tool"},
    {"type": "mcp_toolset", "name": "mcp", "mcp_server_name": "x"},
])
def test_server_tools_are_a_400_naming_the_tool(tool: dict[str, Any]) -> None:
    custom = {"name": "ok", "input_schema": {"type": "object"}}
    with pytest.raises(InvalidRequest) as err:
        parse(body(tools=[custom, tool]))
    assert err.value.status == 400
    assert err.value.param == "tools[1].type"
    assert tool["name"] in err.value.message
    assert tool["type"] in err.value.message


def test_mcp_servers_are_a_400() -> None:
    with pytest.raises(InvalidRequest) as err:
        parse(body(mcp_servers=[{"type": "url", "url": "https://mcp.example", "name": "x"}]))
    assert err.value.param == "mcp_servers"


@pytest.mark.parametrize(("choice", "expected"), [
    ({"type": "auto"}, {"tool_choice": "auto"}),
    ({"type": "any"}, {"tool_choice": "required"}),
    ({"type": "none"}, {"tool_choice": "none"}),
    ({"type": "tool", "name": "read"},
     {"tool_choice": {"type": "function", "function": {"name": "read"}}}),
    ({"type": "auto", "disable_parallel_tool_use": True},
     {"tool_choice": "auto", "parallel_tool_calls": False}),
    ({"type": "any", "disable_parallel_tool_use": True},
     {"tool_choice": "required", "parallel_tool_calls": False}),
    ({"type": "auto", "disable_parallel_tool_use": False}, {"tool_choice": "auto"}),
])
def test_tool_choice(choice: dict[str, Any], expected: dict[str, Any]) -> None:
    tools = [{"name": "read", "input_schema": {"type": "object"}}]
    params = parse(body(tools=tools, tool_choice=choice)).params
    assert {k: params[k] for k in ("tool_choice", "parallel_tool_calls") if k in params} \
        == expected


@pytest.mark.parametrize(("budget", "effort"), [
    (500, "low"), (1024, "low"), (4096, "low"), (4097, "high"), (16384, "high"),
    (16385, "max"), (31999, "max"),
])
def test_thinking_budget_tiers(budget: int, effort: str) -> None:
    call = parse(body(thinking={"type": "enabled", "budget_tokens": budget}))
    assert call.thinking == Thinking(enabled=True, effort=effort)


def test_thinking_disabled_and_adaptive() -> None:
    assert parse(body(thinking={"type": "disabled"})).thinking == Thinking(enabled=False)
    assert parse(body(thinking={"type": "adaptive"})).thinking == Thinking(enabled=True)


@pytest.mark.parametrize(("effort", "mode"),
                         [("low", "low"), ("medium", "high"), ("high", "high"), ("max", "max")])
def test_output_config_effort_wins_over_the_budget(effort: str, mode: str) -> None:
    # medium is DeepSeek's High (its nearest level: issue 12, one mode on every provider)
    call = parse(body(thinking={"type": "enabled", "budget_tokens": 32000},
                      output_config={"effort": effort}))
    assert call.thinking == Thinking(enabled=True, effort=mode)
    adaptive = parse(body(thinking={"type": "adaptive"}, output_config={"effort": effort}))
    assert adaptive.thinking == Thinking(enabled=True, effort=mode)


def test_effort_does_not_switch_disabled_thinking_on() -> None:
    call = parse(body(thinking={"type": "disabled"}, output_config={"effort": "max"}))
    assert call.thinking == Thinking(enabled=False)


def test_no_thinking_field_means_the_models_default() -> None:
    on = parse(body(model="deepseek-v4-pro"))
    off = parse(body(model="deepseek-chat"))
    assert on.thinking == Thinking(enabled=True)
    assert off.thinking == Thinking(enabled=False)
    assert on.model.default_thinking and not off.model.default_thinking


def test_claude_names_map_by_prefix_and_catalogue_names_win() -> None:
    assert parse(body(model="claude-opus-4-1-20250805")).model.canonical == "deepseek-v4-pro"
    assert parse(body(model="claude-3-5-haiku-20241022")).model.canonical == "deepseek-v4-flash"
    assert parse(body(model="deepseek-v4-pro")).model.canonical == "deepseek-v4-pro"


def test_unknown_models_are_not_found() -> None:
    with pytest.raises(ModelNotFound) as err:
        parse(body(model="gpt-4o"))
    assert err.value.status == 404
    assert "gpt-4o" in err.value.message


def test_count_only_accepts_a_body_without_max_tokens() -> None:
    data = body()
    del data["max_tokens"]
    call = parse(data, count_only=True)
    assert "max_tokens" not in call.params
    with pytest.raises(InvalidRequest):
        parse(data)


@pytest.mark.parametrize(("raw", "param"), [
    (b"{not json", None),
    (b"[1, 2]", None),
    (orjson.dumps({"max_tokens": 10, "messages": [{"role": "user", "content": "x"}]}), "model"),
    (orjson.dumps(body(model=7)), "model"),
    (orjson.dumps(body(max_tokens=0)), "max_tokens"),
    (orjson.dumps(body(max_tokens="100")), "max_tokens"),
    (orjson.dumps(body(max_tokens=True)), "max_tokens"),
    (orjson.dumps(body(messages=[])), "messages"),
    (orjson.dumps(body(messages="hi")), "messages"),
    (orjson.dumps(body(messages=[{"role": "tool", "content": "x"}])), "messages[0].role"),
    (orjson.dumps(body(messages=[{"role": "system", "content": [{"type": "image"}]}])),
     "messages[0].content[0].type"),
    (orjson.dumps(body(messages=[{"role": "user", "content": 5}])), "messages[0].content"),
    (orjson.dumps(body(messages=[user({"text": "no type"})])), "messages[0].content[0]"),
    (orjson.dumps(body(messages=[user({"type": "text", "text": 1})])),
     "messages[0].content[0].text"),
    (orjson.dumps(body(messages=[user({"type": "hologram"})])), "messages[0].content[0].type"),
    (orjson.dumps(body(messages=[user({"type": "image", "source": {"type": "file"}})])),
     "messages[0].content[0].source.type"),
    (orjson.dumps(body(messages=[user({"type": "image", "source": {"type": "base64"}})])),
     "messages[0].content[0].source.media_type"),
    (orjson.dumps(body(messages=[user({"type": "tool_use", "id": "t", "name": "n",
                                       "input": {}})])),
     "messages[0].content[0].type"),
    (orjson.dumps(body(messages=[assistant({"type": "tool_result", "tool_use_id": "t"})])),
     "messages[0].content[0].type"),
    (orjson.dumps(body(messages=[user({"type": "tool_result", "content": "x"})])),
     "messages[0].content[0].tool_use_id"),
    (orjson.dumps(body(messages=[user({"type": "tool_result", "tool_use_id": "t",
                                       "is_error": "yes"})])),
     "messages[0].content[0].is_error"),
    (orjson.dumps(body(system=[{"type": "image"}])), "system[0].type"),
    (orjson.dumps(body(system=5)), "system"),
    (orjson.dumps(body(temperature="hot")), "temperature"),
    (orjson.dumps(body(top_k=1.5)), "top_k"),
    (orjson.dumps(body(stop_sequences="END")), "stop_sequences"),
    (orjson.dumps(body(stream="yes")), "stream"),
    (orjson.dumps(body(metadata={"user_id": 5})), "metadata.user_id"),
    (orjson.dumps(body(tools={"name": "x"})), "tools"),
    (orjson.dumps(body(tools=[{"name": "x"}])), "tools[0].input_schema"),
    (orjson.dumps(body(tools=[{"input_schema": {}}])), "tools[0].name"),
    (orjson.dumps(body(tool_choice={"type": "sometimes"})), "tool_choice.type"),
    (orjson.dumps(body(tool_choice="auto")), "tool_choice.type"),
    (orjson.dumps(body(tool_choice={"type": "tool"})), "tool_choice.name"),
    (orjson.dumps(body(thinking={"type": "enabled"})), "thinking.budget_tokens"),
    (orjson.dumps(body(thinking={"type": "on"})), "thinking.type"),
    (orjson.dumps(body(output_config={"effort": "xhigh"})), "output_config.effort"),
])
def test_bad_input_is_a_400_naming_the_field(raw: bytes, param: str | None) -> None:
    with pytest.raises(InvalidRequest) as err:
        parse(raw)
    assert err.value.status == 400
    assert err.value.param == param
    if param is not None:
        assert param.split(".")[0].split("[")[0] in err.value.message


def test_the_input_estimate_grows_with_the_request() -> None:
    small = parse(body())
    tools = [{"name": "read", "description": "Read a file from the disk and return it",
              "input_schema": {"type": "object", "properties": {"path": {"type": "string"}}}}]
    big = parse(body(system="You are a careful assistant. " * 20, tools=tools))
    assert isinstance(small.options, MessagesOptions)
    assert isinstance(big.options, MessagesOptions)
    assert big.options.input_tokens > small.options.input_tokens + 60


def test_deferred_tools_load_only_when_a_tool_reference_names_them() -> None:
    schema = {"type": "object"}
    tools = [{"name": "ToolSearch", "input_schema": schema},
             {"name": "Cron", "input_schema": schema, "defer_loading": True},
             {"name": "Placeholder", "input_schema": schema, "defer_loading": True}]
    before = parse(body(tools=tools))
    assert [t["function"]["name"] for t in before.params["tools"]] == ["ToolSearch"]
    after = parse(body(tools=tools, messages=[
        {"role": "user", "content": "schedule it"},
        assistant({"type": "tool_use", "id": "t1", "name": "ToolSearch",
                   "input": {"query": "cron"}}),
        user({"type": "tool_result", "tool_use_id": "t1",
              "content": [{"type": "tool_reference", "tool_name": "Cron"}]}),
    ]))
    assert [t["function"]["name"] for t in after.params["tools"]] == ["ToolSearch", "Cron"]
    assert after.messages[2] == {"role": "tool", "tool_call_id": "t1",
                                 "content": "Tool Cron is now available."}
