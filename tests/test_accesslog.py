import logging
import re

import orjson
import pytest

from gateway import accesslog
from gateway.accesslog import AccessLogSink
from gateway.keys.principal import Principal
from gateway.logs import JsonFormatter
from gateway.usage import Usage, UsageEvent


def _event(**overrides: object) -> UsageEvent:
    event = UsageEvent(
        request_id="req-1", requested_model="deepseek-chat", model="deepseek-v4-flash",
        thinking="off", stream=True, status="ok", provider="deepseek",
        upstream_model="deepseek-v4-flash",
        usage=Usage(prompt_tokens=120, completion_tokens=30, cache_hit_tokens=100,
                    reasoning_tokens=5),
        attempts=[("ollama", "503"), ("deepseek", "200")], key_id="abc123", team="research",
        latency_s=1.23456, ttft_s=0.2, cost_usd=0.0000123, api="anthropic.messages",
        principal=Principal(key_id="abc123", key_name="notebook", team="research"),
    )
    for name, value in overrides.items():
        setattr(event, name, value)
    return event


def test_one_info_line_with_every_field(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=accesslog.LOGGER)
    AccessLogSink().record(_event())
    [record] = [r for r in caplog.records if r.name == accesslog.LOGGER]
    assert record.levelno == logging.INFO
    assert record.getMessage() == (
        "access request_id=req-1 api=anthropic.messages key_id=abc123 key_name=notebook "
        "team=research requested_model=deepseek-chat model=deepseek-v4-flash thinking=off "
        "stream=true provider=deepseek upstream_model=deepseek-v4-flash "
        "attempts=ollama:503,deepseek:200 status=ok latency_ms=1234.6 ttft_ms=200.0 "
        "prompt_tokens=120 cache_hit_tokens=100 completion_tokens=30 reasoning_tokens=5 "
        "cost_usd=0.0000123"
    )


def test_a_refusal_has_no_empty_fields_and_client_strings_stay_on_one_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger=accesslog.LOGGER)
    event = _event(requested_model='gpt 4"\nfake=1', model="", thinking="", provider=None,
                   upstream_model=None, usage=None, attempts=[], status="refused",
                   error_type="model_not_found", ttft_s=None, cost_usd=None, stream=False,
                   principal=None, key_id=None, team=None)
    AccessLogSink().record(event)
    message = caplog.records[-1].getMessage()
    assert "\n" not in message
    assert message == ('access request_id=req-1 api=anthropic.messages '
                       'requested_model="gpt 4\\"\\nfake=1" status=refused '
                       'error=model_not_found latency_ms=1234.6')


def test_no_work_when_the_level_is_off(monkeypatch: pytest.MonkeyPatch) -> None:
    logging.getLogger(accesslog.LOGGER).setLevel(logging.WARNING)
    try:
        def boom(event: UsageEvent) -> None:
            raise AssertionError("formatted with the access log off")

        monkeypatch.setattr(accesslog, "AccessLine", boom)
        AccessLogSink().record(_event())
    finally:
        logging.getLogger(accesslog.LOGGER).setLevel(logging.NOTSET)


def test_json_lines_carry_the_fields_as_keys() -> None:
    record = logging.LogRecord(accesslog.LOGGER, logging.INFO, __file__, 1,
                               accesslog.AccessLine(_event()), None, None)
    data = orjson.loads(JsonFormatter().format(record))
    assert data["message"] == "access" and data["level"] == "info"
    assert data["logger"] == "gateway.access" and data["ts"].endswith("Z")
    assert (data["status"], data["provider"], data["prompt_tokens"]) == ("ok", "deepseek", 120)
    assert data["attempts"] == "ollama:503,deepseek:200" and "error" not in data
    plain = logging.LogRecord("gateway", logging.WARNING, __file__, 1, "hello %s", ("x",), None)
    assert orjson.loads(JsonFormatter().format(plain))["message"] == "hello x"


def test_a_client_string_ending_in_a_newline_is_quoted(caplog: pytest.LogCaptureFixture) -> None:
    """`$` in a regex also matches before a final newline: "gpt\n" once passed as plain."""
    caplog.set_level(logging.INFO, logger=accesslog.LOGGER)
    AccessLogSink().record(_event(requested_model="gpt\n", request_id="req-1\n"))
    message = caplog.records[-1].getMessage()
    assert "\n" not in message
    assert message.startswith('access request_id="req-1\\n" api=anthropic.messages')
    assert ' requested_model="gpt\\n" ' in message


def test_quoting_is_the_plain_pattern() -> None:
    """A string is written as is exactly when it is all `[A-Za-z0-9_.:/@+,=-]` (not empty)."""
    samples = ["", "a", "gw-0001", "deepseek/deepseek-v4-flash", "a b", 'a"b', "é", "a\tb",
               "key@team+x,y=z:1/2", "\x00", "\uff41", "0", "A_Z.", *map(chr, range(0, 256))]
    for text in samples:
        plain = re.fullmatch(r"[A-Za-z0-9_.:/@+,=-]+", text) is not None
        quoted = accesslog._quoted(text)
        assert (quoted == text) == plain, text
        if not plain:
            assert quoted.startswith('"') and "\n" not in quoted


def test_a_kinds_cached_middle_gives_the_line_made_afresh() -> None:
    """Lines of one kind of call share their middle; any field of it changed is another
    kind, and the call's own request id, times, tokens and cost are never taken from it."""
    parts: accesslog.Parts = {}
    changes: list[dict[str, object]] = [
        {}, {"request_id": "req-2", "latency_s": 0.5, "ttft_s": None, "cost_usd": 1.5,
             "usage": Usage(prompt_tokens=1, completion_tokens=2, estimated=True)},
        {"api": "openai.chat"}, {"key_id": None}, {"team": "other"},
        {"principal": Principal(key_id="abc123", key_name="other name", team="research")},
        {"requested_model": "x y"}, {"model": "m2"}, {"thinking": "high"}, {"stream": False},
        {"provider": "ollama"}, {"upstream_model": "u2"}, {"attempts": [("deepseek", "200")]},
        {"attempts": []}, {"status": "error"}, {"error_type": "timeout"}, {"usage": None},
    ]
    for change in changes:
        event = _event(**change)
        assert str(accesslog.AccessLine(event, parts)) == str(accesslog.AccessLine(event))
        assert str(accesslog.AccessLine(_event(), parts)) == str(accesslog.AccessLine(_event()))


def test_the_middles_kept_are_bounded() -> None:
    parts: accesslog.Parts = {}
    for i in range(accesslog.MAX_PARTS + 10):
        str(accesslog.AccessLine(_event(requested_model=f"client-model-{i}"), parts))
    assert 0 < len(parts) <= accesslog.MAX_PARTS
