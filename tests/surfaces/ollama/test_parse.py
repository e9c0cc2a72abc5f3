"""Ollama `/api/chat` and `/api/generate` bodies in, canonical calls out."""

from __future__ import annotations

import time
from typing import Any

import orjson
import pytest

from gateway.errors import InvalidRequest, ModelNotFound
from gateway.surfaces.ollama.parse import API_CHAT, API_GENERATE, OllamaOptions
from gateway.thinking import Thinking
from tests.surfaces.ollama.support import JPEG, PNG, chat, chat_body, generate

WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "Weather for a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}


def test_a_plain_chat_streams_by_default_at_the_models_default_thinking() -> None:
    call = chat(chat_body())
    assert call.api == API_CHAT
    assert call.stream is True  # Ollama's default
    assert call.model.canonical == "deepseek-v4-flash"
    assert call.thinking == Thinking(enabled=True)  # the catalogue: flash thinks by default
    assert call.messages == [{"role": "user", "content": "Hello there"}]
    assert call.params == {}
    assert isinstance(call.options, OllamaOptions)
    assert call.options.requested_model == "deepseek-v4-flash"
    assert call.options.generate is False


@pytest.mark.parametrize("name, canonical", [
    ("deepseek-v4-flash:cloud", "deepseek-v4-flash"),
    ("deepseek-v4-pro:cloud", "deepseek-v4-pro"),
    ("deepseek-v4-pro:latest", "deepseek-v4-pro"),  # Ollama's implied tag
    ("deepseek-chat", "deepseek-v4-flash"),
])
def test_every_gateway_name_is_accepted(name: str, canonical: str) -> None:
    call = chat(chat_body(model=name))
    assert call.model.canonical == canonical
    assert call.requested_model == name


def test_an_unknown_model_is_a_404_worded_like_ollama() -> None:
    with pytest.raises(ModelNotFound) as caught:
        chat(chat_body(model="llama3.2"))
    assert caught.value.status == 404
    assert caught.value.message.startswith('model "llama3.2" not found')


def test_stream_false_and_a_missing_model() -> None:
    assert chat(chat_body(stream=False)).stream is False
    with pytest.raises(InvalidRequest, match="model is required"):
        chat({"messages": [{"role": "user", "content": "x"}]})
    with pytest.raises(InvalidRequest, match="stream"):
        chat(chat_body(stream="yes"))


@pytest.mark.parametrize("think, expected", [
    (True, Thinking(enabled=True)),
    (False, Thinking(enabled=False)),
    ("low", Thinking(enabled=True, effort="low")),
    ("medium", Thinking(enabled=True, effort="high")),  # DeepSeek's nearest level (issue 12)
    ("high", Thinking(enabled=True, effort="high")),
    ("max", Thinking(enabled=True, effort="max")),
])
def test_think_becomes_the_gateways_thinking_mode(think: Any, expected: Thinking) -> None:
    assert chat(chat_body(think=think)).thinking == expected


def test_think_absent_keeps_a_names_own_default() -> None:
    assert chat(chat_body(model="deepseek-chat")).thinking == Thinking(enabled=False)
    assert chat(chat_body(model="deepseek-chat", think=True)).thinking.enabled


@pytest.mark.parametrize("think", ["extreme", 1, "true"])
def test_a_bad_think_value_is_a_400(think: Any) -> None:
    with pytest.raises(InvalidRequest, match="think"):
        chat(chat_body(think=think))


def test_format_json_and_schema_become_response_format() -> None:
    assert chat(chat_body(format="json")).params["response_format"] == {"type": "json_object"}
    schema = {"type": "object", "properties": {"age": {"type": "integer"}}}
    assert chat(chat_body(format=schema)).params["response_format"] == {
        "type": "json_schema", "json_schema": {"name": "response", "schema": schema}}
    assert "response_format" not in chat(chat_body(format="")).params
    with pytest.raises(InvalidRequest, match="format"):
        chat(chat_body(format="yaml"))


def test_options_map_to_canonical_parameters_and_the_rest_is_ignored() -> None:
    call = chat(chat_body(options={
        "temperature": 0.2, "top_p": 0.9, "top_k": 40, "seed": 7, "num_predict": 128,
        "stop": ["\n\n", "user:"], "presence_penalty": 0.5, "frequency_penalty": 0.25,
        "num_ctx": 8192, "repeat_penalty": 1.1, "mirostat": 2, "num_gpu": 1,
    }, keep_alive="5m"))
    assert call.params == {"temperature": 0.2, "top_p": 0.9, "top_k": 40, "seed": 7,
                           "max_tokens": 128, "stop": ["\n\n", "user:"],
                           "presence_penalty": 0.5, "frequency_penalty": 0.25}


def test_num_predict_without_a_limit_and_stop_as_a_string() -> None:
    assert "max_tokens" not in chat(chat_body(options={"num_predict": -1})).params
    assert chat(chat_body(options={"stop": "END"})).params["stop"] == ["END"]


@pytest.mark.parametrize("options, field", [
    ({"temperature": "hot"}, "options.temperature"),
    ({"num_predict": 1.5}, "options.num_predict"),
    ({"seed": True}, "options.seed"),
    ({"stop": [1]}, "options.stop"),
])
def test_mistyped_options_are_a_400_naming_the_option(options: dict[str, Any],
                                                      field: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        chat(chat_body(options=options))
    assert caught.value.param == field


def test_tools_are_function_tools() -> None:
    bare = {"function": {"name": "now"}}  # no type, no parameters
    call = chat(chat_body(tools=[WEATHER, bare]))
    assert call.params["tools"] == [
        WEATHER,
        {"type": "function",
         "function": {"name": "now", "parameters": {"type": "object", "properties": {}}}},
    ]
    with pytest.raises(InvalidRequest, match=r"tools\[0\].function.name"):
        chat(chat_body(tools=[{"type": "function", "function": {}}]))
    with pytest.raises(InvalidRequest, match="only function tools"):
        chat(chat_body(tools=[{"type": "web_search"}]))


def test_images_become_image_parts_with_their_media_type() -> None:
    call = chat(chat_body(messages=[
        {"role": "user", "content": "what is this?", "images": [PNG, JPEG]}]))
    assert call.messages == [{"role": "user", "content": [
        {"type": "text", "text": "what is this?"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
        {"type": "image_url", "image_url": {"url": f"data:image/jpeg;base64,{JPEG}"}},
    ]}]


def test_an_image_that_is_not_one_is_a_400() -> None:
    with pytest.raises(InvalidRequest) as caught:
        chat(chat_body(messages=[{"role": "user", "content": "x", "images": ["aGVsbG8gd29ybGQ="]}]))
    assert caught.value.param == "messages[0].images[0]"
    with pytest.raises(InvalidRequest, match="base64"):
        chat(chat_body(messages=[{"role": "user", "content": "x", "images": ["not base64!"]}]))
    with pytest.raises(InvalidRequest, match="only accepted in user messages"):
        chat(chat_body(messages=[{"role": "system", "content": "x", "images": [PNG]}]))


def test_a_tool_loop_pairs_results_with_calls_by_name() -> None:
    """What the python client sends back: the answer's message (its calls without ids, their
    arguments objects, its thinking) then one `tool` message per call, named."""
    call = chat(chat_body(messages=[
        {"role": "System", "content": "be brief"},
        {"role": "user", "content": "weather in Paris and Oslo, and the time"},
        {"role": "assistant", "content": "", "thinking": "two cities, one clock",
         "tool_calls": [
             {"function": {"name": "get_weather", "arguments": {"city": "Paris"}}},
             {"function": {"name": "now", "arguments": {}}},
             {"function": {"name": "get_weather", "arguments": {"city": "Oslo"}}}]},
        {"role": "tool", "content": "12:00", "tool_name": "now"},
        {"role": "tool", "content": "sunny", "tool_name": "get_weather"},
        {"role": "tool", "content": "rain", "tool_name": "get_weather"},
    ], tools=[WEATHER]))
    system, _user, assistant, *results = call.messages
    assert system == {"role": "system", "content": "be brief"}
    assert assistant == {
        "role": "assistant", "content": None, "reasoning_content": "two cities, one clock",
        "tool_calls": [
            {"id": "call_2_0", "type": "function",
             "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}},
            {"id": "call_2_1", "type": "function",
             "function": {"name": "now", "arguments": "{}"}},
            {"id": "call_2_2", "type": "function",
             "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'}},
        ]}
    assert results == [
        {"role": "tool", "tool_call_id": "call_2_1", "content": "12:00"},
        {"role": "tool", "tool_call_id": "call_2_0", "content": "sunny"},
        {"role": "tool", "tool_call_id": "call_2_2", "content": "rain"},
    ]


def test_tool_call_ids_and_raw_arguments_come_back_as_sent() -> None:
    call = chat(chat_body(messages=[
        {"role": "user", "content": "go"},
        {"role": "assistant", "content": "Checking.", "tool_calls": [
            {"id": "call_abc", "function": {"name": "f", "arguments": {"_raw": "{broken"}}},
            {"function": {"name": "g", "arguments": '{"kept": "as text"}'}}]},
        {"role": "tool", "content": "done", "tool_call_id": "call_abc"},
        {"role": "tool", "content": "also"},  # no name, no id: the next unanswered call
    ]))
    assistant = call.messages[1]
    assert assistant["content"] == "Checking."
    assert [c["function"]["arguments"] for c in assistant["tool_calls"]] == [
        "{broken", '{"kept": "as text"}']
    assert [m["tool_call_id"] for m in call.messages[2:]] == ["call_abc", "call_1_1"]


def test_a_tool_message_without_a_call_before_it_is_a_400() -> None:
    with pytest.raises(InvalidRequest, match="must answer a tool call"):
        chat(chat_body(messages=[{"role": "user", "content": "x"},
                                 {"role": "tool", "content": "y", "tool_name": "f"}]))


@pytest.mark.parametrize("messages, field", [
    ([], "messages"),
    ("hello", "messages"),
    ([{"role": "narrator", "content": "x"}], "messages[0].role"),
    ([{"role": "user", "content": ["a", "b"]}], "messages[0].content"),
    ([{"role": "assistant", "tool_calls": [{"function": {"arguments": {}}}]}],
     "messages[0].tool_calls[0].function.name"),
])
def test_malformed_messages_are_a_400_naming_the_field(messages: Any, field: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        chat(chat_body(messages=messages))
    assert caught.value.param == field


def test_unknown_fields_are_ignored_and_bad_json_is_a_400() -> None:
    call = chat(chat_body(truncate=True, shift=False, logprobs=True, _debug_render_only=True))
    assert call.params == {}
    with pytest.raises(InvalidRequest, match="not valid JSON"):
        chat(b"{nope")


def test_generate_is_a_one_turn_chat() -> None:
    call = generate({"model": "deepseek-v4-pro:cloud", "prompt": "Why is the sky blue?",
                     "system": "You are a physicist.", "images": [PNG], "think": "high",
                     "format": "json", "options": {"num_predict": 50}, "stream": False,
                     "template": "{{ .Prompt }}", "context": [1, 2, 3], "keep_alive": 0})
    assert call.api == API_GENERATE
    assert call.stream is False
    assert call.model.canonical == "deepseek-v4-pro"
    assert call.thinking == Thinking(enabled=True, effort="high")
    assert call.messages == [
        {"role": "system", "content": "You are a physicist."},
        {"role": "user", "content": [
            {"type": "text", "text": "Why is the sky blue?"},
            {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}}]},
    ]
    assert call.params == {"max_tokens": 50, "response_format": {"type": "json_object"}}
    assert isinstance(call.options, OllamaOptions) and call.options.generate is True


def test_generate_raw_sends_the_prompt_alone() -> None:
    call = generate({"model": "deepseek-v4-flash", "prompt": "[INST] hi [/INST]",
                     "system": "ignored in raw mode", "raw": True})
    assert call.messages == [{"role": "user", "content": "[INST] hi [/INST]"}]
    assert call.stream is True


def test_generate_refuses_a_suffix_and_an_empty_prompt() -> None:
    with pytest.raises(InvalidRequest, match="fill-in-the-middle") as caught:
        generate({"model": "deepseek-v4-flash", "prompt": "def f(", "suffix": "return x"})
    assert caught.value.param == "suffix"
    with pytest.raises(InvalidRequest, match="nothing to load"):
        generate({"model": "deepseek-v4-flash"})
    with pytest.raises(InvalidRequest, match="prompt: must be a string"):
        generate({"model": "deepseek-v4-flash", "prompt": ["a"]})


def test_the_parse_time_is_kept_for_the_durations() -> None:
    before = time.monotonic_ns()
    options = chat(orjson.dumps(chat_body())).options
    assert isinstance(options, OllamaOptions)
    assert before <= options.started_ns <= time.monotonic_ns()


@pytest.mark.parametrize("role", [["user"], {"r": 1}])
def test_a_role_that_is_not_a_string_is_a_400_not_a_crash(role: Any) -> None:
    with pytest.raises(InvalidRequest) as caught:
        chat(chat_body(messages=[{"role": role, "content": "x"}]))
    assert caught.value.param == "messages[0].role"
