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
        ({"reasoning_effort": "medium"}, Thinking(enabled=True, effort="medium")),
        ({"reasoning": {"enabled": False}}, Thinking(enabled=False)),
        ({"reasoning": {"effort": "none"}}, Thinking(enabled=False)),
        ({"reasoning": {"effort": "xhigh"}}, Thinking(enabled=True, effort="xhigh")),
        ({"reasoning": {"max_tokens": 512}}, Thinking(enabled=True, max_tokens=512)),
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
    ],
)
def test_bad_thinking_fields_are_refused_with_the_field_named(fields: dict, param: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        extract_thinking(dict(fields), default_enabled=True)
    assert info.value.param == param
    assert info.value.status == 400
