import pytest

from gateway.errors import InvalidRequest
from gateway.thinking import Thinking, extract_thinking


def test_model_default_applies_when_request_is_silent() -> None:
    assert extract_thinking({}, default_enabled=True) == Thinking(enabled=True)
    assert extract_thinking({}, default_enabled=False) == Thinking(enabled=False)


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"thinking": {"type": "disabled"}}, Thinking(enabled=False)),
        ({"thinking": {"type": "enabled"}}, Thinking(enabled=True)),
        ({"reasoning_effort": "none"}, Thinking(enabled=False)),
        # efforts are folded to DeepSeek's levels, per dialect (issue 12: xhigh meant High on
        # DeepSeek but Max on OpenRouter, so a failover changed the mode)
        ({"reasoning_effort": "medium"}, Thinking(enabled=True, effort="high")),
        ({"reasoning_effort": "xhigh"}, Thinking(enabled=True, effort="high")),
        ({"reasoning_effort": "ultra"}, Thinking(enabled=True, effort="max")),
        ({"reasoning_effort": "minimal"}, Thinking(enabled=True, effort="low")),
        ({"reasoning": {"enabled": False}}, Thinking(enabled=False)),
        ({"reasoning": {"effort": "none"}}, Thinking(enabled=False)),
        ({"reasoning": {"effort": "xhigh"}}, Thinking(enabled=True, effort="max")),
        ({"reasoning": {"max_tokens": 512}}, Thinking(enabled=True, effort="low", max_tokens=512)),
        ({"reasoning": {"max_tokens": 20000}},
         Thinking(enabled=True, effort="max", max_tokens=20000)),
        # the seed's examples: budget_tokens picks the level by tier
        ({"thinking": {"type": "enabled", "budget_tokens": 8000}},
         Thinking(enabled=True, effort="high")),
        ({"thinking": {"type": "enabled", "budget_tokens": 32000}},
         Thinking(enabled=True, effort="max")),
        ({"thinking": {"type": "enabled", "budget_tokens": 4096}},
         Thinking(enabled=True, effort="low")),
        # an explicit effort beats a budget's tier
        ({"thinking": {"type": "enabled", "budget_tokens": 32000}, "reasoning_effort": "low"},
         Thinking(enabled=True, effort="low")),
        ({"reasoning": {"enabled": True, "exclude": True}}, Thinking(enabled=True, exclude=True)),
        # DeepSeek's explicit switch beats the other dialects
        ({"thinking": {"type": "disabled"}, "reasoning_effort": "high"}, Thinking(enabled=False)),
    ],
)
def test_every_dialect_overrides_the_model_default(fields: dict, expected: Thinking) -> None:
    default = not expected.enabled
    body = {"messages": [], **fields}
    assert extract_thinking(body, default_enabled=default) == expected
    assert not {"thinking", "reasoning", "reasoning_effort"} & body.keys()


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"thinking": {"type": "sometimes"}}, "thinking"),
        ({"thinking": True}, "thinking"),
        ({"reasoning_effort": "extreme"}, "reasoning_effort"),
        ({"reasoning_effort": 3}, "reasoning_effort"),
        ({"reasoning": "high"}, "reasoning"),
        ({"reasoning": {"effort": "high", "max_tokens": 10}}, "reasoning"),
        ({"reasoning": {"max_tokens": -1}}, "reasoning.max_tokens"),
        ({"reasoning": {"enabled": "yes"}}, "reasoning.enabled"),
        ({"thinking": {"type": "enabled", "budget_tokens": 0}}, "thinking.budget_tokens"),
    ],
)
def test_bad_thinking_fields_are_refused_with_the_field_named(fields: dict, param: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        extract_thinking(dict(fields), default_enabled=True)
    assert info.value.param == param
    assert info.value.status == 400


@pytest.mark.parametrize(
    ("thinking", "mode"),
    [(Thinking(enabled=False), "off"), (Thinking(enabled=True), "high"),
     (Thinking(enabled=True, effort="low"), "low"), (Thinking(enabled=True, effort="max"), "max")],
)
def test_the_mode_is_one_of_four_words(thinking: Thinking, mode: str) -> None:
    assert thinking.mode == mode == thinking.label


def test_a_mode_alias_default_applies_when_the_request_is_silent() -> None:
    assert extract_thinking({}, True, "max") == Thinking(enabled=True, effort="max")
    assert extract_thinking({"reasoning_effort": "low"}, True, "max").mode == "low"
