"""Schema-driven fuzzing of the chat endpoint through real HTTP: whatever a client sends, the
gateway answers with a non-5xx status and an OpenAI-format error body when it refuses."""

from __future__ import annotations

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from tests.e2e.conftest import GatewayFactory


def test_no_input_makes_the_gateway_fail(make_gateway: GatewayFactory) -> None:
    """Bodies generated from the gateway's own OpenAPI schema (valid, borderline and invalid
    in every field), sent over real HTTP to a gateway backed by the simulated providers."""
    gateway = make_gateway(["deepseek", "ollama"])
    schema = schemathesis.openapi.from_url(gateway.url + "/openapi.json")
    operation = schema["/v1/chat/completions"]["POST"]
    statuses: set[int] = set()

    @given(case=operation.as_strategy())
    @settings(max_examples=100, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    def check(case: schemathesis.Case) -> None:
        response = case.call(timeout=20)
        statuses.add(response.status_code)
        assert response.status_code < 500, response.text
        if response.status_code >= 400:
            assert set(response.json()["error"]) == {"message", "type", "param", "code"}
            assert "Traceback" not in response.text

    check()
    assert 200 in statuses and 400 in statuses  # it reached both sides of validation


@pytest.mark.parametrize("raw", [
    b"\x00\xff\xfe",                         # not UTF-8
    b"[" * 5000 + b"]" * 5000,                # deeper than any parser should follow
    b'{"model": "deepseek-v4-flash", "messages": [' + b'{"role": "user", "content": "x"},' * 2
    + b"]}",                                  # trailing comma
    b'{"model": "deepseek-v4-flash", "messages": [{"role": "user", "content": {"a": 1}}]}',
    b'{"model": "deepseek-v4-flash", "messages": [{"role": "user", "content": "x"}], '
    b'"tools": "all of them"}',
    b'{"model": "' + b"m" * 100_000 + b'", "messages": [{"role": "user", "content": "x"}]}',
])
def test_hostile_bodies_get_a_clean_400(make_gateway: GatewayFactory, raw: bytes) -> None:
    gateway = make_gateway(["deepseek"])
    response = httpx.post(gateway.url + "/v1/chat/completions", content=raw,
                          headers={"content-type": "application/json"}, timeout=10)
    assert response.status_code in (400, 404)
    assert set(response.json()["error"]) == {"message", "type", "param", "code"}
