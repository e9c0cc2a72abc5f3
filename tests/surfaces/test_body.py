"""The shared body parser: nesting past the limit is a 400 naming the field, at parse time."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.errors import InvalidRequest
from gateway.surfaces.body import MAX_DEPTH, _deeper, check_depth, json_object, json_value


def nested(depth: int, leaf: Any = 1) -> Any:
    value = leaf
    for i in range(depth):
        value = [value] if i % 2 else {"k": value}
    return value


def test_a_body_within_the_limit_parses() -> None:
    body = {"model": "m", "tools": nested(MAX_DEPTH - 2)}
    assert json_object(orjson.dumps(body)) == body


@pytest.mark.parametrize("depth", [MAX_DEPTH, 300, 1000])
def test_a_deep_field_is_a_400_that_names_it(depth: int) -> None:
    raw = orjson.dumps({"model": "m", "messages": [{"role": "user", "content": nested(depth)}]}) \
        if depth < 250 else (b'{"model": "m", "messages": [{"role": "user", "content": '
                             + b"[" * depth + b"]" * depth + b"}]}")
    with pytest.raises(InvalidRequest) as info:
        json_object(raw)
    assert info.value.status == 400
    assert info.value.param is not None
    assert info.value.param.startswith("messages[0].content")
    assert "nested deeper than" in info.value.message


def test_the_path_names_the_deep_branch_not_a_shallow_sibling() -> None:
    body = {"a": nested(5), "b": [1, {"c": nested(MAX_DEPTH + 5)}]}
    with pytest.raises(InvalidRequest) as info:
        check_depth(body)
    assert info.value.param is not None and info.value.param.startswith("b[1].c")


def test_many_shallow_brackets_are_not_too_deep() -> None:
    body = {"messages": [{"role": "user", "content": [[1], [2]]} for _ in range(500)]}
    assert json_object(orjson.dumps(body)) == body


def test_json_value_accepts_scalars_and_checks_depth() -> None:
    assert json_value(b"3") == 3
    with pytest.raises(InvalidRequest):
        json_value(b"[" * 500 + b"]" * 500)


json_values = st.recursive(
    st.none() | st.integers() | st.text(max_size=3),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=2), inner,
                                                                 max_size=3),
    max_leaves=20,
)


@given(value=st.lists(json_values, max_size=3) | st.dictionaries(st.text(max_size=2),
                                                                 json_values, max_size=3),
       limit=st.integers(1, 6))
@settings(max_examples=500, deadline=None, derandomize=True, database=None)
def test_the_fast_depth_test_agrees_with_the_walk_that_names_the_path(
        value: Any, limit: int) -> None:
    try:
        check_depth(value, limit)
    except InvalidRequest:
        assert _deeper(value, limit - 1)
    else:
        assert not _deeper(value, limit - 1)


def test_an_empty_container_past_the_limit_counts() -> None:
    body = {"model": "m", "tools": nested(MAX_DEPTH - 1, leaf=[])}
    with pytest.raises(InvalidRequest):
        json_object(orjson.dumps(body))
    assert json_object(orjson.dumps({"model": "m", "tools": nested(MAX_DEPTH - 2, leaf=[])}))
