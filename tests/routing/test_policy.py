"""RouteTable.plan: the order targets are tried in, for every strategy, pins and defaults."""

from __future__ import annotations

import random
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest

from gateway.errors import InvalidRequest, NoProviderConfigured
from gateway.routing.policy import Target
from gateway.thinking import Thinking
from tests.routing.support import config, providers, table

MODEL = "deepseek-v4-flash"


def names(plan: list[Target]) -> list[str]:
    return [t.provider.name for t in plan]


def route_yaml(strategy: str, targets: str) -> str:
    return f"routes:\n  {MODEL}:\n    strategy: {strategy}\n    targets:\n{targets}"


# ---- default routes ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("keys", "expected"),
    [
        ({"OLLAMA_API_KEY": "k", "DEEPSEEK_API_KEY": "k"}, ["deepseek", "ollama"]),
        ({"OLLAMA_API_KEY": "k", "OPENROUTER_API_KEY": "k"}, ["openrouter", "ollama"]),
        ({"OLLAMA_API_KEY": "k", "OPENROUTER_API_KEY": "k", "DEEPSEEK_API_KEY": "k"},
         ["deepseek", "openrouter", "ollama"]),
        ({"OLLAMA_API_KEY": "k"}, ["ollama"]),
    ],
)
def test_default_route_is_the_providers_with_keys_in_declared_order(
    keys: dict[str, str], expected: list[str]
) -> None:
    """Without a configured route, the env keys decide who serves, DeepSeek first."""
    plan = table(config(env=keys)).plan(MODEL)
    assert names(plan) == expected
    upstream = {t.provider.name: t.upstream_model for t in plan}
    # one generation everywhere (issue 12): OpenRouter's deepseek/deepseek-v4-flash is V4
    assert upstream.get("openrouter", "deepseek/deepseek-v4.1-flash") == \
        "deepseek/deepseek-v4.1-flash"
    assert all(t.thinking is None and t.priority == 0 for t in plan)


def test_no_key_at_all_means_no_provider_configured() -> None:
    routes = table(config(env={}))
    assert routes.servable_models() == set()
    with pytest.raises(NoProviderConfigured, match="DEEPSEEK_API_KEY"):
        routes.plan(MODEL)


def test_a_configured_target_whose_provider_has_no_key_is_dropped(tmp_path: Path) -> None:
    yaml = route_yaml("ordered", "      - provider: openrouter\n      - provider: ollama\n")
    plan = table(config(tmp_path, yaml, env={"OLLAMA_API_KEY": "k"})).plan(MODEL)
    assert names(plan) == ["ollama"]


# ---- ordered ---------------------------------------------------------------------------------


def test_ordered_tries_lower_priority_first_and_keeps_config_order_within_a_level(
    tmp_path: Path,
) -> None:
    yaml = route_yaml("ordered", (
        "      - {provider: ollama, priority: 1}\n"
        "      - {provider: openrouter, priority: 0}\n"
        "      - {provider: deepseek, priority: 1}\n"
    ))
    routes = table(config(tmp_path, yaml))
    for _ in range(3):  # deterministic: no randomness in `ordered`
        assert names(routes.plan(MODEL)) == ["openrouter", "ollama", "deepseek"]


def test_a_plain_list_route_is_ordered_and_may_rename_the_upstream_model(tmp_path: Path) -> None:
    yaml = (f"routes:\n  {MODEL}:\n    - provider: ollama\n      model: my-custom-tag\n"
            "    - provider: deepseek\n")
    plan = table(config(tmp_path, yaml)).plan(MODEL)
    assert [(t.provider.name, t.upstream_model) for t in plan] == [
        ("ollama", "my-custom-tag"), ("deepseek", "deepseek-flash")]  # DeepSeek's V4.1 name
    assert plan[0].key == "ollama/my-custom-tag"


# ---- weighted --------------------------------------------------------------------------------


def test_weighted_first_picks_are_proportional_to_weights(tmp_path: Path) -> None:
    yaml = route_yaml("weighted", (
        "      - {provider: deepseek, weight: 1}\n"
        "      - {provider: openrouter, weight: 2}\n"
        "      - {provider: ollama, weight: 5}\n"
    ))
    routes = table(config(tmp_path, yaml))
    rng = random.Random(1234)
    runs = 4_000
    first: Counter[str] = Counter()
    for _ in range(runs):
        plan = names(routes.plan(MODEL, rng=rng))
        assert sorted(plan) == ["deepseek", "ollama", "openrouter"]  # a permutation: all kept
        first[plan[0]] += 1
    for name, weight in (("deepseek", 1), ("openrouter", 2), ("ollama", 5)):
        assert first[name] / runs == pytest.approx(weight / 8, abs=0.03), first


def test_weighted_shuffles_only_within_a_priority_level(tmp_path: Path) -> None:
    yaml = route_yaml("weighted", (
        "      - {provider: deepseek, weight: 100, priority: 1}\n"
        "      - {provider: openrouter, weight: 1}\n"
        "      - {provider: ollama, weight: 1}\n"
    ))
    routes = table(config(tmp_path, yaml))
    rng = random.Random(7)
    heads = Counter(names(routes.plan(MODEL, rng=rng))[0] for _ in range(200))
    assert set(heads) == {"openrouter", "ollama"}  # the heavy fallback is never first
    assert all(names(routes.plan(MODEL, rng=rng))[-1] == "deepseek" for _ in range(50))


# ---- cheapest --------------------------------------------------------------------------------


def test_cheapest_orders_by_the_price_book_now(tmp_path: Path) -> None:
    """Ollama's subscription is free per token; the book's override makes OpenRouter cheaper
    than DeepSeek. (Issue 12: `cheapest` used to read a second, stale table in defaults.yaml.)"""
    yaml = ("prices:\n  providers:\n    openrouter:\n"
            f"      {MODEL}: [{{from: 2026-01-01, cache_hit: 0, cache_miss: 0.10, output: 0.20}}]\n"
            + route_yaml("cheapest", "      - provider: deepseek\n      - provider: openrouter\n"
                                     "      - provider: ollama\n"))
    cfg = config(tmp_path, yaml)
    when = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
    assert names(table(cfg, when).plan(MODEL)) == ["ollama", "openrouter", "deepseek"]


def test_cheapest_reads_the_book_at_the_current_time(tmp_path: Path) -> None:
    """DeepSeek's peak doubles its price: at peak OpenRouter (no peak hours) is cheaper."""
    yaml = route_yaml("cheapest", "      - provider: deepseek\n      - provider: openrouter\n")
    cfg = config(tmp_path, yaml)
    peak = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)  # a Tuesday, 02:00 UTC
    off_peak = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
    assert names(table(cfg, peak).plan(MODEL)) == ["openrouter", "deepseek"]
    assert names(table(cfg, off_peak).plan(MODEL)) == ["deepseek", "openrouter"]


def test_cheapest_puts_a_target_without_a_price_last(tmp_path: Path) -> None:
    yaml = ("prices:\n  providers:\n    ollama:\n"
            f"      {MODEL}: [{{from: 2099-01-01, cache_hit: 0, cache_miss: 0, output: 0}}]\n"
            + route_yaml("cheapest", "      - provider: ollama\n      - provider: deepseek\n"))
    plan = table(config(tmp_path, yaml)).plan(MODEL)
    assert names(plan) == ["deepseek", "ollama"]


# ---- latency ---------------------------------------------------------------------------------


def test_latency_puts_unmeasured_targets_first_then_fastest(tmp_path: Path) -> None:
    """An unmeasured target must be tried or it would never get a measurement."""
    yaml = route_yaml("latency", "      - provider: deepseek\n      - provider: openrouter\n"
                                 "      - provider: ollama\n")
    routes = table(config(tmp_path, yaml))
    measured = {"deepseek/deepseek-flash": 0.5, "openrouter/deepseek/deepseek-v4.1-flash": 0.1}
    assert names(routes.plan(MODEL, latency=measured.get)) == ["ollama", "openrouter", "deepseek"]
    measured["ollama/deepseek-v4.1-flash"] = 0.3
    assert names(routes.plan(MODEL, latency=measured.get)) == ["openrouter", "ollama", "deepseek"]


# ---- pinning ---------------------------------------------------------------------------------


def test_a_pin_selects_only_that_provider() -> None:
    plan = table(config()).plan(MODEL, pinned="ollama")
    assert names(plan) == ["ollama"]


def test_a_pin_is_refused_when_config_forbids_it(tmp_path: Path) -> None:
    routes = table(config(tmp_path, "allow_provider_pin: false\n"))
    with pytest.raises(InvalidRequest, match="disabled") as err:
        routes.plan(MODEL, pinned="ollama")
    assert err.value.status == 400
    assert names(routes.plan(MODEL)) == ["deepseek", "openrouter", "ollama"]  # unpinned is fine


@pytest.mark.parametrize("pinned", ["nope", "openrouter"])
def test_a_pin_to_a_provider_that_cannot_serve_the_model_is_a_client_error(pinned: str) -> None:
    """Unknown names and providers without a key are the client's mistake: 400, not 503."""
    routes = table(config(env={"DEEPSEEK_API_KEY": "k", "OLLAMA_API_KEY": "k"}))
    with pytest.raises(InvalidRequest) as err:
        routes.plan(MODEL, pinned=pinned)
    assert err.value.param == "x-gateway-provider" and pinned in err.value.message


# ---- thinking override -----------------------------------------------------------------------


def test_a_target_may_force_thinking_off(tmp_path: Path) -> None:
    yaml = (f"routes:\n  {MODEL}:\n    - provider: deepseek\n"
            "    - {provider: ollama, thinking: false}\n")
    deepseek, ollama = table(config(tmp_path, yaml)).plan(MODEL)
    asked = Thinking(enabled=True, effort="high")
    assert deepseek.thinking is None and deepseek.thinking_for(asked) is asked
    assert ollama.thinking_for(asked) == Thinking(enabled=False)
    off = Thinking(enabled=False)
    assert ollama.thinking_for(off) is off


def test_a_target_forcing_thinking_on_keeps_the_requested_details() -> None:
    cfg = config()
    provider = providers(cfg)["deepseek"]
    target = Target(provider=provider, upstream_model=MODEL, thinking=True)
    asked = Thinking(enabled=True, effort="max")
    assert target.thinking_for(asked) is asked
    assert target.thinking_for(Thinking(enabled=False)) == Thinking(enabled=True)
