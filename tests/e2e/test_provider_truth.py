"""Issue 12 end to end: the seed's three thinking modes reach every provider as the same mode
(asserted on what each simulator received), one model is one generation everywhere, the
model's output limit is held before any provider is asked, and an account out of quota is left
alone until its cooldown ends."""

from __future__ import annotations

import copy
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import GatewayFactory, Upstreams
from tests.upstream.common import Faults

PROVIDERS = ("deepseek", "openrouter", "ollama")
QUESTION = [{"role": "user", "content": "Prove that there are infinitely many primes."}]

# The seed's request examples, verbatim: Non-Thinking, Thinking (High), Think Max.
SEED_EXAMPLES: dict[str, dict[str, Any]] = {
    "off": {"model": "deepseek-v4-flash", "messages": QUESTION,
            "thinking": {"type": "disabled"}},
    "high": {"model": "deepseek-v4-flash", "messages": QUESTION,
             "thinking": {"type": "enabled", "budget_tokens": 8000}},
    "max": {"model": "deepseek-v4-flash", "messages": QUESTION,
            "thinking": {"type": "enabled", "budget_tokens": 32000}},
}


def received_mode(provider: str, body: dict[str, Any]) -> Any:
    if provider == "deepseek":
        return (body["thinking"], body.get("reasoning_effort"))
    if provider == "openrouter":
        return body["reasoning"]
    return body["reasoning_effort"]


# What each provider must receive for each mode (PROVIDERS.md).
EXPECTED: dict[str, dict[str, Any]] = {
    "deepseek": {"off": ({"type": "disabled"}, None), "low": ({"type": "enabled"}, "low"),
                 "high": ({"type": "enabled"}, "high"), "max": ({"type": "enabled"}, "max")},
    "openrouter": {"off": {"enabled": False}, "low": {"enabled": True, "effort": "low"},
                   "high": {"enabled": True, "effort": "high"},
                   "max": {"enabled": True, "effort": "xhigh"}},
    "ollama": {"off": "none", "low": "low", "high": "high", "max": "max"},
}
UPSTREAM_NAME = {"deepseek": "deepseek-flash", "openrouter": "deepseek/deepseek-v4.1-flash",
                 "ollama": "deepseek-v4.1-flash"}


def post(url: str, body: dict[str, Any], **headers: str) -> httpx.Response:
    return httpx.post(url + "/v1/chat/completions", json=body, headers=headers, timeout=20)


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("mode", ["off", "high", "max"])
def test_the_seeds_examples_reach_each_provider_as_the_same_mode(
    make_gateway: GatewayFactory, upstreams: Upstreams, provider: str, mode: str
) -> None:
    gateway = make_gateway([provider])
    response = post(gateway.url, copy.deepcopy(SEED_EXAMPLES[mode]))
    assert response.status_code == 200, response.text
    [sent] = [r.json for r in upstreams[provider].requests]
    assert received_mode(provider, sent) == EXPECTED[provider][mode]
    assert "budget_tokens" not in str(sent)  # no provider's OpenAI endpoint takes it
    assert sent["model"] == UPSTREAM_NAME[provider]  # V4.1 on every provider
    [event] = gateway.sink.events
    assert event.thinking == mode  # the usage row's `thinking` column


@pytest.mark.parametrize(
    ("fields", "mode"),
    [
        ({"reasoning_effort": "ultra"}, "max"),          # DeepSeek folds ultra to max
        ({"reasoning_effort": "xhigh"}, "high"),         # ... and xhigh to high
        ({"reasoning": {"effort": "xhigh"}}, "max"),     # OpenRouter: xhigh is max reasoning
        ({"reasoning": {"max_tokens": 2000}}, "low"),    # a budget: the same tiers
        ({"reasoning_effort": "minimal"}, "low"),
    ],
)
def test_every_dialect_gives_one_mode_on_every_provider(
    make_gateway: GatewayFactory, upstreams: Upstreams, fields: dict[str, Any], mode: str
) -> None:
    gateway = make_gateway()
    for provider in PROVIDERS:
        body = {"model": "deepseek-v4-flash", "messages": QUESTION, **copy.deepcopy(fields)}
        response = post(gateway.url, body, **{"x-gateway-provider": provider})
        assert response.status_code == 200, response.text
        sent = upstreams[provider].requests[-1].json
        assert received_mode(provider, sent) == EXPECTED[provider][mode]
    assert {e.thinking for e in gateway.sink.events} == {mode}


def test_a_failover_keeps_the_mode(make_gateway: GatewayFactory, upstreams: Upstreams) -> None:
    upstreams.ollama.faults = Faults(status=503)
    upstreams.openrouter.faults = Faults(status=502)
    gateway = make_gateway(["ollama", "openrouter", "deepseek"])
    response = post(gateway.url, copy.deepcopy(SEED_EXAMPLES["max"]))
    assert response.status_code == 200, response.text
    assert response.headers["x-gateway-attempts"] == "ollama:503,openrouter:502,deepseek:200"
    assert upstreams.ollama.requests[-1].json["reasoning_effort"] == "max"
    assert upstreams.openrouter.requests[-1].json["reasoning"]["effort"] == "xhigh"
    assert upstreams.deepseek.requests[-1].json["reasoning_effort"] == "max"
    assert gateway.sink.events[-1].thinking == "max"


def test_a_mode_alias_picks_the_mode(make_gateway: GatewayFactory, upstreams: Upstreams) -> None:
    gateway = make_gateway(["deepseek"])
    body = {"model": "deepseek-v4-flash-max", "messages": QUESTION}
    assert post(gateway.url, body).status_code == 200
    assert upstreams.deepseek.requests[-1].json["reasoning_effort"] == "max"
    body = {"model": "deepseek-v4-flash-off", "messages": QUESTION}
    assert post(gateway.url, body).status_code == 200
    sent = upstreams.deepseek.requests[-1].json
    assert sent["thinking"] == {"type": "disabled"} and "reasoning_effort" not in sent
    assert [e.thinking for e in gateway.sink.events] == ["max", "off"]


# ---- one model, one generation; limits --------------------------------------------------


@pytest.mark.parametrize("name", ["deepseek-v4.1-flash", "deepseek-flash",
                                  "deepseek/deepseek-v4.1-flash-1017"])
def test_the_v41_names_are_accepted(make_gateway: GatewayFactory, upstreams: Upstreams,
                                    name: str) -> None:
    gateway = make_gateway(["openrouter"])
    response = post(gateway.url, {"model": name, "messages": QUESTION})
    assert response.status_code == 200, response.text
    assert upstreams.openrouter.requests[-1].json["model"] == "deepseek/deepseek-v4.1-flash"


@pytest.mark.parametrize("limit", [400_000, 1_000_000])
def test_max_tokens_above_the_models_limit_is_a_400_naming_it(
    make_gateway: GatewayFactory, upstreams: Upstreams, limit: int
) -> None:
    gateway = make_gateway()
    response = post(gateway.url, {"model": "deepseek-v4-flash", "messages": QUESTION,
                                  "max_tokens": limit})
    assert response.status_code == 400
    error = response.json()["error"]
    assert "393216" in error["message"] and error["param"] == "max_tokens"
    assert not any(sim.requests for sim in upstreams.all())
    ok = post(gateway.url, {"model": "deepseek-v4-flash", "messages": QUESTION,
                            "max_tokens": 393_216})
    assert ok.status_code == 200


@pytest.mark.parametrize("limit", [0, -5])
def test_zero_or_negative_max_tokens_is_a_400(
    make_gateway: GatewayFactory, upstreams: Upstreams, limit: int
) -> None:
    gateway = make_gateway()
    for name in ("max_tokens", "max_completion_tokens"):
        response = post(gateway.url, {"model": "deepseek-v4-flash", "messages": QUESTION,
                                      name: limit})
        assert response.status_code == 400 and response.json()["error"]["param"] == name
    assert not any(sim.requests for sim in upstreams.all())


def test_a_model_can_clamp_instead(make_gateway: GatewayFactory, upstreams: Upstreams) -> None:
    yaml = "models:\n  deepseek-v4-flash:\n    over_max_output: clamp\n"
    gateway = make_gateway(["deepseek"], yaml=yaml)
    response = post(gateway.url, {"model": "deepseek-v4-flash", "messages": QUESTION,
                                  "max_tokens": 1_000_000})
    assert response.status_code == 200, response.text
    assert upstreams.deepseek.requests[-1].json["max_tokens"] == 393_216


def test_models_carry_context_output_and_price(make_gateway: GatewayFactory) -> None:
    gateway = make_gateway(["deepseek", "ollama"])
    data = httpx.get(gateway.url + "/v1/models", timeout=10).json()["data"]
    flash = next(m for m in data if m["id"] == "deepseek-v4-flash")
    assert flash["context_length"] == 1_048_576 and flash["max_output_tokens"] == 393_216
    assert flash["generation"] == "V4.1-Flash"
    assert set(flash["pricing"]) == {"deepseek", "ollama"}
    assert flash["pricing"]["ollama"]["output"] == 0  # a subscription
    assert flash["pricing"]["deepseek"]["cache_miss"] in (0.15, 0.30)  # off-peak or peak
    assert any(m["id"] == "deepseek-v4.1-flash" for m in data)


# ---- quota-aware cooldowns ----------------------------------------------------------------


def test_after_a_usage_limit_429_ollama_gets_no_attempts_until_the_cooldown_ends(
    make_gateway: GatewayFactory, upstreams: Upstreams, caplog: pytest.LogCaptureFixture
) -> None:
    upstreams.ollama.faults = Faults(status=429, retry_after=1)  # the sim drops Retry-After
    gateway = make_gateway(["ollama", "deepseek"])
    first = post(gateway.url, {"model": "deepseek-v4-flash", "messages": QUESTION})
    assert first.status_code == 200
    assert first.headers["x-gateway-attempts"] == "ollama:429,deepseek:200"
    upstreams.ollama.faults = Faults()  # even were it back, it is not asked before the end
    with httpx.Client(base_url=gateway.url, timeout=20) as client:
        for _ in range(100):
            r = client.post("/v1/chat/completions",
                            json={"model": "deepseek-v4-flash", "messages": QUESTION})
            assert r.status_code == 200
            assert r.headers["x-gateway-attempts"] == "deepseek:200"
        ready = client.get("/readyz").json()
        metrics = client.get("/metrics").text
    assert len(upstreams.ollama.requests) == 1
    assert ready["out_of_quota"]["ollama"]["quota"] == "session"
    assert 3500 < ready["out_of_quota"]["ollama"]["seconds_left"] <= 3600
    assert 'gateway_provider_quota_cooldown_seconds{provider="ollama",quota="session"}' in metrics
    warnings = [r for r in caplog.records if "out of quota" in r.getMessage()]
    assert len(warnings) == 1


def test_a_spent_balance_takes_deepseek_out_too(
    make_gateway: GatewayFactory, upstreams: Upstreams
) -> None:
    upstreams.deepseek.faults = Faults(status=402)
    gateway = make_gateway(["deepseek", "openrouter"],
                           yaml="routing:\n  breaker:\n    quota_cooldown: {balance: 120}\n")
    for _ in range(5):
        r = post(gateway.url, {"model": "deepseek-v4-flash", "messages": QUESTION})
        assert r.status_code == 200
    assert len(upstreams.deepseek.requests) == 1
    ready = httpx.get(gateway.url + "/readyz", timeout=10).json()
    assert ready["out_of_quota"]["deepseek"]["quota"] == "balance"
    assert ready["out_of_quota"]["deepseek"]["seconds_left"] <= 120


# ---- spend ------------------------------------------------------------------------------


def test_openrouters_reported_cost_is_the_recorded_cost(
    make_gateway: GatewayFactory, upstreams: Upstreams
) -> None:
    gateway = make_gateway(["openrouter"])
    assert post(gateway.url, {"model": "deepseek-v4-flash", "messages": QUESTION}).status_code \
        == 200
    [event] = gateway.sink.events
    assert event.usage is not None and event.usage.provider_cost_usd is not None
    assert event.cost_usd == event.usage.provider_cost_usd
    assert event.book_cost_usd is not None and event.book_cost_usd != event.cost_usd
