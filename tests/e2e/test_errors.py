"""Every error path reaches the client as an OpenAI-format error with a fitting status."""

from __future__ import annotations

import openai
import pytest

from tests.e2e.conftest import GatewayFactory, Upstreams
from tests.upstream.common import Faults

MESSAGES = [{"role": "user", "content": "hi"}]


def error_body(exc: openai.APIStatusError) -> dict:
    body = exc.response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"message", "type", "param", "code"}
    err: dict = body["error"]
    return err


@pytest.mark.parametrize(
    ("raw", "status", "fragment"),
    [
        (b"{nope", 400, "not valid JSON"),
        (b'{"model": "deepseek-v4-flash"}', 400, "'messages' is a required property"),
        (b'{"model": "deepseek-v4-flash", "messages": [{"role": 1}]}', 400, "messages[0].role"),
        (b'{"model": "deepseek-v4-flash", "messages": [{"role": "user", "content": "x"}],'
         b' "temperature": "warm"}', 400, "'temperature' must be a number"),
        (b'{"model": "gpt-4o", "messages": [{"role": "user", "content": "x"}]}', 404,
         "'gpt-4o' does not exist"),
        (b'{"model": "deepseek-v4-flash", "messages": [{"role": "user", "content": "x"}],'
         b' "thinking": {"type": "maybe"}}', 400, "'thinking'"),
    ],
)
def test_bad_client_input_is_a_clear_openai_error(
    make_gateway: GatewayFactory, upstreams: Upstreams, raw: bytes, status: int, fragment: str
) -> None:
    with make_gateway(["deepseek"]).http() as http:
        response = http.post("/v1/chat/completions", content=raw,
                             headers={"content-type": "application/json"})
    assert response.status_code == status
    err = response.json()["error"]
    assert fragment in err["message"]
    assert response.headers["x-request-id"]
    assert upstreams.deepseek.requests == []  # refused before any upstream call


def test_unknown_model_via_the_sdk_is_not_found(make_gateway: GatewayFactory) -> None:
    with pytest.raises(openai.NotFoundError) as info:
        make_gateway(["deepseek"]).openai().chat.completions.create(
            model="deepseek-v5-ultra", messages=MESSAGES)  # type: ignore[arg-type]
    assert error_body(info.value)["code"] == "model_not_found"


@pytest.mark.parametrize(
    ("path", "body", "fragment"),
    [
        ("/v1/chat/completions", {"model": "deepseek-v4-flsh", "messages": MESSAGES},
         "(did you mean 'deepseek-v4-flash'?)"),
        ("/v1/messages", {"model": "deepseek-v4-flsh", "max_tokens": 10, "messages": MESSAGES},
         "(did you mean 'deepseek-v4-flash'?)"),
        ("/api/chat", {"model": "deepseek-chatt", "messages": MESSAGES},
         "(did you mean 'deepseek-chat'?)"),
    ],
)
def test_a_misspelt_model_is_a_404_that_names_the_closest_model(
    make_gateway: GatewayFactory, upstreams: Upstreams, path: str, body: dict, fragment: str
) -> None:
    with make_gateway(["deepseek"]).http() as http:
        response = http.post(path, json=body)
    assert response.status_code == 404
    assert fragment in response.text
    assert upstreams.deepseek.requests == []


def test_oversized_body_is_413(make_gateway: GatewayFactory) -> None:
    gateway = make_gateway(["deepseek"], yaml="max_body_bytes: 1000\n")
    with gateway.http() as http:
        response = http.post("/v1/chat/completions", json={
            "model": "deepseek-v4-flash",
            "messages": [{"role": "user", "content": "x" * 2000}]})
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "request_too_large"


def test_unknown_path_and_method_are_openai_errors(make_gateway: GatewayFactory) -> None:
    with make_gateway(["deepseek"]).http() as http:
        missing = http.get("/v1/embeddings")
        wrong_method = http.get("/v1/chat/completions")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
    assert wrong_method.status_code == 405
    assert wrong_method.json()["error"]["type"] == "invalid_request_error"


@pytest.mark.parametrize(
    ("provider", "status", "sdk_error", "client_status"),
    [
        ("deepseek", 400, openai.BadRequestError, 400),
        ("deepseek", 422, openai.UnprocessableEntityError, 422),
        ("deepseek", 429, openai.RateLimitError, 429),
        ("deepseek", 500, openai.InternalServerError, 502),
        ("deepseek", 503, openai.InternalServerError, 503),
        ("deepseek", 402, openai.InternalServerError, 502),
        ("openrouter", 402, openai.InternalServerError, 502),
        ("openrouter", 408, openai.InternalServerError, 504),
        ("openrouter", 429, openai.RateLimitError, 429),
        ("openrouter", 502, openai.InternalServerError, 502),
        ("ollama", 429, openai.RateLimitError, 429),
        ("ollama", 502, openai.InternalServerError, 502),
        ("ollama", 503, openai.InternalServerError, 503),
    ],
)
@pytest.mark.parametrize("stream", [False, True])
def test_upstream_errors_in_every_dialect_become_openai_errors(
    make_gateway: GatewayFactory, upstreams: Upstreams, provider: str, status: int,
    sdk_error: type[openai.APIStatusError], client_status: int, stream: bool,
) -> None:
    upstreams[provider].faults = Faults(status=status, retry_after=3 if status == 429 else None)
    with pytest.raises(sdk_error) as info:
        make_gateway([provider]).openai().chat.completions.create(
            model="deepseek-v4-flash", messages=MESSAGES, stream=stream)  # type: ignore[arg-type]
    assert info.value.status_code == client_status
    err = error_body(info.value)
    assert err["message"]
    attempts = info.value.response.headers["x-gateway-attempts"].split(",")
    assert set(attempts) == {f"{provider}:{status}"}
    # out of quota (issue 12): DeepSeek's balance, Ollama's usage limit take the account out
    quota = (provider, status) in {("deepseek", 402), ("ollama", 429)}
    if status in (429, 400, 422) or quota:  # not retried: a client error, a Retry-After too
        assert len(attempts) == 1          # long, or an account out of quota
    else:  # transient: retried with backoff up to max_attempts
        assert len(attempts) == 3
    if status == 429 and not quota:
        assert info.value.response.headers["retry-after"] == "3"
    elif quota:  # a usage limit says nothing of when it ends
        assert "retry-after" not in info.value.response.headers


@pytest.mark.parametrize("provider", ["deepseek", "openrouter", "ollama"])
def test_a_wrong_upstream_key_is_a_502_that_leaks_nothing(
    make_gateway: GatewayFactory, provider: str
) -> None:
    prefix = {"deepseek": "DEEPSEEK", "openrouter": "OPENROUTER", "ollama": "OLLAMA"}[provider]
    wrong = "sk-wrong-key-do-not-leak-0123456789"
    gateway = make_gateway([provider], env={f"{prefix}_API_KEY": wrong})
    with pytest.raises(openai.InternalServerError) as info:
        gateway.openai().chat.completions.create(model="deepseek-v4-flash", messages=MESSAGES)
    assert info.value.status_code == 502
    text = info.value.response.text
    assert "credentials" in text
    assert wrong not in text and wrong[-4:] not in text


@pytest.mark.parametrize("fault", [Faults(reset=True), Faults(garbage=True)])
def test_resets_and_garbage_with_no_other_target_are_502(
    make_gateway: GatewayFactory, upstreams: Upstreams, fault: Faults
) -> None:
    upstreams.ollama.faults = fault
    with pytest.raises(openai.InternalServerError) as info:
        make_gateway(["ollama"]).openai().chat.completions.create(
            model="deepseek-v4-flash", messages=MESSAGES)
    assert info.value.status_code == 502
    assert error_body(info.value)["code"] in ("upstream_disconnected", "upstream_invalid_answer")


def test_master_key_is_required_when_set(make_gateway: GatewayFactory) -> None:
    gateway = make_gateway(["deepseek"], env={"GATEWAY_MASTER_KEY": "sk-master-1"})
    with pytest.raises(openai.AuthenticationError) as info:
        gateway.openai(api_key="sk-wrong").chat.completions.create(
            model="deepseek-v4-flash", messages=MESSAGES)
    assert "sk-master-1" not in info.value.response.text
    with gateway.http() as http:
        assert http.post("/v1/chat/completions", json={}).status_code == 401
    reply = gateway.openai(api_key="sk-master-1").chat.completions.create(
        model="deepseek-v4-flash", messages=MESSAGES)
    assert reply.choices[0].message.content == "echo: hi"


def test_failed_requests_still_produce_a_usage_event(
    make_gateway: GatewayFactory, upstreams: Upstreams
) -> None:
    upstreams.deepseek.faults = Faults(status=503)
    gateway = make_gateway(["deepseek"])
    with pytest.raises(openai.InternalServerError):
        gateway.openai().chat.completions.create(model="deepseek-chat", messages=MESSAGES)
    [event] = gateway.sink.events
    assert event.status == "error"
    assert event.attempts == [("deepseek", "503")] * 3
    assert event.requested_model == "deepseek-chat" and event.thinking == "off"


def test_cors_is_off_by_default_and_on_only_for_configured_origins(
    make_gateway: GatewayFactory,
) -> None:
    preflight = {"origin": "https://app.example", "access-control-request-method": "POST",
                 "access-control-request-headers": "authorization,content-type"}
    body = {"model": "deepseek-v4-flash", "messages": MESSAGES}
    with make_gateway(["deepseek"]).http() as http:
        response = http.post("/v1/chat/completions", json=body,
                             headers={"origin": "https://app.example"})
        assert response.status_code == 200
        assert "access-control-allow-origin" not in response.headers
    gateway = make_gateway(["deepseek"], yaml="cors_origins: [https://app.example]\n")
    with gateway.http() as http:
        assert http.options("/v1/chat/completions", headers=preflight).status_code == 200
        allowed = http.post("/v1/chat/completions", json=body,
                            headers={"origin": "https://app.example"})
        assert allowed.headers["access-control-allow-origin"] == "https://app.example"
        assert "x-gateway-provider" in allowed.headers["access-control-expose-headers"]
        other = http.options("/v1/chat/completions",
                             headers={**preflight, "origin": "https://evil.example"})
        assert other.status_code == 400
