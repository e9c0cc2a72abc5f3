"""Which upstream answers mean "this account is out of quota" (issue 12, PROVIDERS.md)."""

from __future__ import annotations

import orjson
import pytest

from gateway.config import load_config
from gateway.providers import build_provider
from gateway.reasoning_memory import ReasoningMemory

CONFIG = load_config(env={"DEEPSEEK_API_KEY": "k", "OPENROUTER_API_KEY": "k",
                          "OLLAMA_API_KEY": "k"})


def provider(name: str):  # type: ignore[no-untyped-def]
    return build_provider(name, CONFIG.providers[name], ReasoningMemory())


@pytest.mark.parametrize(
    ("name", "status", "body", "quota"),
    [
        ("ollama", 429, {"error": "you (user) have reached your session usage limit, upgrade "
                                  "for higher limits: https://ollama.com/upgrade"}, "session"),
        ("ollama", 429, {"error": "you (user) have reached your weekly usage limit"}, "weekly"),
        ("ollama", 402, {"error": "this model uses extra usage only, and your extra usage "
                                  "balance is empty"}, "balance"),
        ("ollama", 429, {"error": "too many concurrent requests"}, None),
        ("ollama", 503, {"error": "Server overloaded, please retry shortly"}, None),
        ("deepseek", 402, {"error": {"message": "Insufficient Balance", "type": "unknown_error",
                                     "param": None, "code": "invalid_request_error"}}, "balance"),
        ("deepseek", 429, {"error": {"message": "Rate Limit Reached"}}, None),
        ("openrouter", 429, {"error": {"code": 429, "message": "Rate limit exceeded"}}, None),
    ],
)
def test_out_of_quota_answers_are_recognised(name: str, status: int, body: object,
                                             quota: str | None) -> None:
    error = provider(name).error_from_response(status, orjson.dumps(body), {})
    assert error.quota == quota
    assert error.retryable  # another provider may serve it
