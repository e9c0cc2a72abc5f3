"""How each adapter writes a canonical request in its provider's dialect."""

import orjson
import pytest

from gateway.core.call import Call
from gateway.models import ResolvedModel
from gateway.providers import Provider
from gateway.thinking import Thinking

ON, OFF = Thinking(enabled=True), Thinking(enabled=False)


def payload(provider: Provider, body: dict, thinking: Thinking, stream: bool = False) -> dict:
    """What `provider` sends for an OpenAI-format `body`, as a canonical call."""
    params = {k: v for k, v in body.items() if k not in ("model", "messages")}
    call = Call("openai.chat", body["model"], ResolvedModel("deepseek-v4-flash", True), thinking,
                body["messages"], params, stream)
    out: dict = orjson.loads(provider.build_payload(call, "upstream-name", thinking, stream))
    return out


def simple() -> dict:
    return {"model": "deepseek-chat", "messages": [{"role": "user", "content": "hi"}]}


@pytest.mark.parametrize(
    ("name", "thinking", "expected"),
    [
        # every mode is sent explicitly (issue 12), so each provider gives the same one
        ("deepseek", ON, {"thinking": {"type": "enabled"}, "reasoning_effort": "high"}),
        ("deepseek", OFF, {"thinking": {"type": "disabled"}}),
        ("deepseek", Thinking(True, effort="medium"),
         {"thinking": {"type": "enabled"}, "reasoning_effort": "high"}),
        ("deepseek", Thinking(True, effort="minimal"),
         {"thinking": {"type": "enabled"}, "reasoning_effort": "low"}),
        ("deepseek", Thinking(True, effort="max"),
         {"thinking": {"type": "enabled"}, "reasoning_effort": "max"}),
        ("openrouter", ON, {"reasoning": {"enabled": True, "effort": "high"}}),
        ("openrouter", OFF, {"reasoning": {"enabled": False}}),
        ("openrouter", Thinking(True, effort="max", exclude=True),
         {"reasoning": {"enabled": True, "effort": "xhigh", "exclude": True}}),
        ("openrouter", Thinking(True, max_tokens=900),
         {"reasoning": {"enabled": True, "effort": "high"}}),  # the mode, not the budget
        ("ollama", ON, {"reasoning_effort": "high"}),
        ("ollama", OFF, {"reasoning_effort": "none"}),
        ("ollama", Thinking(True, effort="minimal"), {"reasoning_effort": "low"}),
    ],
)
def test_thinking_is_written_in_each_providers_dialect(
    providers: dict[str, Provider], name: str, thinking: Thinking, expected: dict
) -> None:
    out = payload(providers[name], simple(), thinking)
    for key in ("thinking", "reasoning", "reasoning_effort"):
        assert out.get(key) == expected.get(key), key
    assert out["model"] == "upstream-name"


def test_unknown_and_openai_fields_pass_through_untouched(providers: dict[str, Provider]) -> None:
    extra = {"tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}],
             "tool_choice": "auto", "n": 2, "logprobs": True, "top_logprobs": 3,
             "response_format": {"type": "json_object"}, "stop": ["x"], "seed": 7,
             "user": "u-1", "max_tokens": 50, "some_future_field": {"a": [1]}}
    for provider in providers.values():
        out = payload(provider, {**simple(), **extra}, ON)
        for key, value in extra.items():
            assert out[key] == value, (provider.name, key)


def test_streams_always_ask_for_usage(providers: dict[str, Provider]) -> None:
    body = {**simple(), "stream": True, "stream_options": {"include_usage": False}}
    for provider in providers.values():
        assert payload(provider, body, ON, stream=True)["stream_options"] == {
            "include_usage": True
        }


def test_request_body_is_not_changed_for_the_next_attempt(
    providers: dict[str, Provider]
) -> None:
    body = {**simple(), "messages": [
        {"role": "user", "content": "q"},
        {"role": "assistant", "content": "a", "reasoning_content": "why"},
    ]}
    snapshot = orjson.dumps(body)
    for provider in providers.values():
        payload(provider, body, ON)
    assert orjson.dumps(body) == snapshot


def history(**assistant: object) -> dict:
    return {**simple(), "messages": [
        {"role": "user", "content": "weather?"},
        {"role": "assistant", "content": None, **assistant},
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
    ]}


CALLS = [{"id": "call_1", "type": "function", "function": {"name": "w", "arguments": "{}"}}]


@pytest.mark.parametrize(
    ("name", "field"), [("deepseek", "reasoning_content"), ("openrouter", "reasoning"),
                        ("ollama", "reasoning")],
)
@pytest.mark.parametrize("client_field", ["reasoning_content", "reasoning"])
def test_assistant_reasoning_goes_to_each_providers_field(
    providers: dict[str, Provider], name: str, field: str, client_field: str
) -> None:
    out = payload(providers[name], history(tool_calls=CALLS, **{client_field: "I should call w"}),
                  ON)
    turn = out["messages"][1]
    assert turn[field] == "I should call w"
    other = "reasoning" if field == "reasoning_content" else "reasoning_content"
    assert other not in turn


def test_deepseek_tool_turns_get_reasoning_back_when_the_client_dropped_it(
    providers: dict[str, Provider],
) -> None:
    deepseek = providers["deepseek"]
    # Remembered from an answer the gateway relayed earlier (any provider's).
    providers["ollama"].translate_answer(
        {"choices": [{"index": 0, "message": {"role": "assistant", "reasoning": "thought A",
                                              "tool_calls": CALLS}}]},
        "deepseek-v4-flash", ON,
    )
    out = payload(deepseek, history(tool_calls=CALLS), ON)
    assert out["messages"][1]["reasoning_content"] == "thought A"
    unknown = [{**CALLS[0], "id": "call_never_seen"}]
    out = payload(deepseek, history(tool_calls=unknown), ON)
    assert out["messages"][1]["reasoning_content"] == ""
    # Thinking off: DeepSeek has no such rule, nothing is added.
    out = payload(deepseek, history(tool_calls=unknown), OFF)
    assert "reasoning_content" not in out["messages"][1]


def test_extra_body_from_config_is_added_without_overriding_the_client(
    providers: dict[str, Provider],
) -> None:
    from gateway.config import load_config
    from gateway.providers import build_provider
    from gateway.reasoning_memory import ReasoningMemory

    base = load_config(env={"OPENROUTER_API_KEY": "k"}).providers["openrouter"]
    cfg = base.model_copy(update={"extra_body": {"provider": {"order": ["a"]}, "seed": 1}})
    provider = build_provider("openrouter", cfg, ReasoningMemory())
    out = payload(provider, {**simple(), "seed": 42}, ON)
    assert out["provider"] == {"order": ["a"]}
    assert out["seed"] == 42


def test_key_goes_in_the_bearer_header_and_never_in_repr(providers: dict[str, Provider]) -> None:
    ollama = providers["ollama"]
    assert ollama.headers["Authorization"] == "Bearer ollama-secret"
    assert ollama.headers["user-agent"].startswith("switchyard/")  # prebuilt, case-insensitive
    assert "secret" not in repr(ollama)
    assert ollama.url == "https://ollama.com/v1/chat/completions"
    assert providers["openrouter"].url == "https://openrouter.ai/api/v1/chat/completions"
    assert providers["deepseek"].url == "https://api.deepseek.com/chat/completions"
