"""How each adapter turns its provider's answers and errors into the canonical dialect."""

import orjson
import pytest

from gateway.errors import UpstreamError
from gateway.providers import Provider
from gateway.surfaces.openai_chat.errors import error_object
from gateway.thinking import Thinking
from gateway.usage import Usage

ON = Thinking(enabled=True)


def translate(provider: Provider, body: object, model: str,
              thinking: Thinking) -> tuple[dict, Usage | None]:
    """The canonical answer's chat-dialect form and its parsed usage."""
    answer = provider.translate_answer(body, model, thinking)
    return answer.native, answer.usage


def answer(message: dict, usage: dict) -> dict:
    return {"id": "x", "object": "chat.completion", "model": "upstream/model",
            "choices": [{"index": 0, "message": {"role": "assistant", **message},
                         "finish_reason": "stop"}], "usage": usage}


def test_deepseek_answer_keeps_its_dialect(providers: dict[str, Provider]) -> None:
    usage = {"prompt_tokens": 10, "completion_tokens": 7, "total_tokens": 17,
             "prompt_cache_hit_tokens": 4, "prompt_cache_miss_tokens": 6,
             "completion_tokens_details": {"reasoning_tokens": 3}}
    data, parsed = translate(providers["deepseek"],
        answer({"content": "hello", "reasoning_content": "hmm"}, usage), "deepseek-v4-flash", ON)
    assert data["model"] == "deepseek-v4-flash"
    assert data["choices"][0]["message"]["reasoning_content"] == "hmm"
    assert data["usage"]["prompt_cache_hit_tokens"] == 4
    assert data["usage"]["prompt_cache_miss_tokens"] == 6
    assert data["usage"]["prompt_tokens_details"] == {"cached_tokens": 4}
    assert data["usage"]["completion_tokens_details"] == {"reasoning_tokens": 3}
    assert parsed is not None and parsed.total_tokens == 17


def test_openrouter_reasoning_and_usage_are_translated(providers: dict[str, Provider]) -> None:
    usage = {"prompt_tokens": 20, "completion_tokens": 9, "total_tokens": 29, "cost": 0.00042,
             "prompt_tokens_details": {"cached_tokens": 12},
             "completion_tokens_details": {"reasoning_tokens": 5}}
    message = {"content": "hi", "reasoning": "let me think",
               "reasoning_details": [{"type": "reasoning.text", "text": "let me think"}]}
    data, parsed = translate(providers["openrouter"],
        answer(message, usage), "deepseek-v4-flash", ON)
    out = data["choices"][0]["message"]
    assert out["reasoning_content"] == "let me think"
    assert "reasoning" not in out and "reasoning_details" not in out
    assert data["usage"]["prompt_cache_hit_tokens"] == 12
    assert data["usage"]["prompt_cache_miss_tokens"] == 8
    assert data["usage"]["completion_tokens_details"] == {"reasoning_tokens": 5}
    assert "cost" not in data["usage"]
    assert parsed is not None and parsed.provider_cost_usd == pytest.approx(0.00042)


@pytest.mark.parametrize(("field", "value"), [
    ("prompt_tokens", True), ("prompt_tokens", "12"), ("completion_tokens", 2.5),
    ("prompt_cache_hit_tokens", False), ("prompt_tokens_details", {"cached_tokens": True}),
    ("completion_tokens_details", {"reasoning_tokens": "3"}), ("cost", True), ("cost", "0.1"),
])
def test_a_usage_field_of_the_wrong_type_counts_as_absent(
    providers: dict[str, Provider], field: str, value: object
) -> None:
    """A count is an int (never a bool or a string) and a cost a number (never a bool): an odd
    upstream value is read as missing, not as 1 token or $1."""
    usage = {"prompt_tokens": 10, "completion_tokens": 4, field: value}
    parsed = providers["openrouter"].parse_usage(usage)
    assert parsed is not None
    expected = Usage(prompt_tokens=0 if field == "prompt_tokens" else 10,
                     completion_tokens=0 if field == "completion_tokens" else 4)
    assert parsed == expected


def test_ollama_usage_has_no_invented_cache_counts(providers: dict[str, Provider]) -> None:
    usage = {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}
    data, _ = translate(providers["ollama"],
        answer({"content": "ok", "reasoning": "r"}, usage), "deepseek-v4-pro", ON)
    assert data["choices"][0]["message"]["reasoning_content"] == "r"
    assert data["usage"] == usage
    assert data["model"] == "deepseek-v4-pro"


def test_excluded_reasoning_is_removed(providers: dict[str, Provider]) -> None:
    data, _ = translate(providers["openrouter"],
        answer({"content": "x", "reasoning": "secret thoughts"}, {}), "m",
        Thinking(enabled=True, exclude=True))
    assert "reasoning_content" not in data["choices"][0]["message"]


@pytest.mark.parametrize("body", [[], {"object": "chat.completion"}, {"choices": "none"}, "x"])
def test_a_2xx_that_is_not_a_completion_is_an_invalid_answer(
    providers: dict[str, Provider], body: object
) -> None:
    with pytest.raises(UpstreamError) as info:
        translate(providers["deepseek"], body, "m", ON)
    assert info.value.code == "upstream_invalid_answer"
    assert info.value.retryable


@pytest.mark.parametrize(
    ("name", "status", "raw", "client_status", "message"),
    [
        ("deepseek", 400, {"error": {"message": "Invalid max_tokens", "type":
                                     "invalid_request_error", "code": "invalid_request_error"}},
         400, "Invalid max_tokens"),
        ("deepseek", 503, {"error": {"message": "Server overloaded"}}, 503,
         "deepseek: Server overloaded"),
        ("openrouter", 402, {"error": {"code": 402, "message": "Insufficient credits"}}, 502,
         "openrouter: Insufficient credits"),
        ("openrouter", 422, {"error": {"code": 422, "message": "bad param"}}, 422, "bad param"),
        ("ollama", 429, {"error": "you (user) have reached your session usage limit"}, 429,
         "ollama: you (user) have reached your session usage limit"),
        ("ollama", 502, {"error": "cloud model cannot be reached"}, 502,
         "ollama: cloud model cannot be reached"),
    ],
)
def test_every_error_dialect_becomes_an_openai_error(
    providers: dict[str, Provider], name: str, status: int, raw: dict, client_status: int,
    message: str,
) -> None:
    err = providers[name].error_from_response(status, orjson.dumps(raw))
    assert err.status == client_status
    assert error_object(err)["error"]["message"] == message
    assert set(error_object(err)["error"]) == {"message", "type", "param", "code"}
    assert err.retryable is (status not in (400, 422))


def test_upstream_auth_errors_hide_the_upstream_text(providers: dict[str, Provider]) -> None:
    raw = b'{"error": {"message": "Authentication Fails, Your api key: ****cret is invalid"}}'
    err = providers["deepseek"].error_from_response(401, raw)
    assert err.status == 502
    assert "****cret" not in err.message and "Authentication Fails" not in err.message
    assert err.retryable


def test_retry_after_is_kept(providers: dict[str, Provider]) -> None:
    err = providers["openrouter"].error_from_response(
        429, b'{"error": {"code": 429, "message": "slow down"}}', {"Retry-After": "7"})
    assert err.retry_after == 7.0
    assert err.headers["retry-after"] == "7"


def test_a_plain_text_error_body_is_still_an_openai_error(
    providers: dict[str, Provider]
) -> None:
    err = providers["ollama"].error_from_response(500, b"<html>Internal Server Error</html>")
    assert err.status == 502
    assert "Internal Server Error" in err.message
