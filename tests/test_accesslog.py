import logging

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
