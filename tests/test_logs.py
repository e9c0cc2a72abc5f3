import asyncio
import logging
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from gateway import logs
from gateway.accesslog import AccessLine, AccessLogSink
from gateway.db import migrate
from gateway.db.engine import async_url, create_engine
from gateway.db.store import UsageStore
from gateway.usage import Usage, UsageEvent


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)
    access = logging.getLogger("gateway.access")
    access.setLevel(logging.NOTSET)
    for handler in list(access.handlers):
        access.removeHandler(handler)
    access.propagate = True
    logging.getLogger("alembic").setLevel(logging.NOTSET)
    logging.getLogger("uvicorn.access").propagate = True


def test_json_format_covers_uvicorn_and_the_access_switch(
    capsys: pytest.CaptureFixture[str], restore_logging: None
) -> None:
    logs.configure("info", "json", access_log=False)
    logging.getLogger("uvicorn.error").info("Started server process [%d]", 7)
    logging.getLogger("gateway.access").info("must not appear")
    logging.getLogger("alembic.runtime.plugins").info("setup plugin x")
    logging.getLogger("gateway").debug("below the level")
    lines = [orjson.loads(x) for x in capsys.readouterr().err.splitlines()]
    assert [(x["logger"], x["message"], x["level"]) for x in lines] == [
        ("uvicorn.error", "Started server process [7]", "info")]


def test_workers_get_the_same_setup(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], restore_logging: None
) -> None:
    for name in ("SWITCHYARD_LOG_LEVEL", "SWITCHYARD_LOG_FORMAT", "SWITCHYARD_ACCESS_LOG"):
        monkeypatch.delenv(name, raising=False)
    logs.export_settings("warning", "json", access_log=True)
    logs.configure_from_env()
    logging.getLogger("gateway").info("quiet")
    logging.getLogger("gateway").warning("loud")
    [line] = capsys.readouterr().err.splitlines()
    assert orjson.loads(line)["message"] == "loud"


def test_uvicorn_writes_no_access_lines_of_its_own_in_a_worker_either(
    monkeypatch: pytest.MonkeyPatch, restore_logging: None
) -> None:
    """uvicorn's protocol logs an access line per request when its access logger has any
    handler up its chain, and then also skips the gateway's one-write response head. A
    `--workers` worker configures logging after uvicorn did (`configure_from_env`), so the
    gateway's setup must leave that logger without one; the gateway writes its own lines."""
    logs.export_settings("info", "text", access_log=True)
    logs.configure_from_env()
    assert not logging.getLogger("uvicorn.access").hasHandlers()
    assert logging.getLogger("gateway.access").hasHandlers()
    assert logging.getLogger("uvicorn.error").hasHandlers()


def test_start_says_one_line_about_the_database(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)

    async def run() -> list[str]:
        store = UsageStore(async_url(None, tmp_path / "u.db"))
        try:
            await store.prepare()
        finally:
            await store.close()
        engine = create_engine(async_url(None, tmp_path / "u.db"))
        try:
            return [await migrate.upgrade(engine)]
        finally:
            await engine.dispose()

    again = asyncio.run(run())
    records = [r for r in caplog.records if r.levelno >= logging.INFO]
    assert [r.name for r in records] == ["gateway.metering"], [r.getMessage() for r in records]
    assert "(migrated from empty to " in records[0].getMessage()
    assert again[0].startswith("schema current: ")


def _events(n: int) -> list[UsageEvent]:
    return [UsageEvent(request_id=f"req-{i}", requested_model="m x", model="deepseek-v4-flash",
                       thinking="off", stream=False, status="ok", provider="deepseek",
                       usage=Usage(prompt_tokens=i, completion_tokens=2), latency_s=0.01,
                       cost_usd=0.5)
            for i in range(n)]


class _CountingStream:
    def __init__(self) -> None:
        self.writes: list[str] = []

    def write(self, text: str) -> None:
        self.writes.append(text)

    def flush(self) -> None:
        pass


def _access_lines_to_counting_stream(monkeypatch: pytest.MonkeyPatch,
                                     fmt: logs.LogFormat) -> _CountingStream:
    """Logging set up in `fmt` onto a stream that keeps each write."""
    stream = _CountingStream()
    monkeypatch.setattr("sys.stderr", stream)
    logs.configure("info", fmt)
    return stream


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_access_lines_of_one_tick_are_one_write_formatted_as_one_by_one(
    fmt: logs.LogFormat, monkeypatch: pytest.MonkeyPatch, restore_logging: None
) -> None:
    stream = _access_lines_to_counting_stream(monkeypatch, fmt)
    events = _events(5)
    sink = AccessLogSink()

    async def one_tick() -> int:
        for event in events:
            sink.record(event)
        written = len(stream.writes)
        await asyncio.sleep(0)  # the loop's next tick
        return written

    assert asyncio.run(one_tick()) == 0  # nothing written while the tick's requests run
    [text] = stream.writes
    lines = text.splitlines()
    assert len(lines) == 5 and text.endswith("\n")
    handler = logging.getLogger().handlers[0]
    for event, line in zip(events, lines, strict=True):
        alone = handler.format(logging.LogRecord("gateway.access", logging.INFO, __file__, 1,
                                                 AccessLine(event), None, None))
        if fmt == "json":
            got, want = orjson.loads(line), orjson.loads(alone)
            assert got.pop("ts")[:16] == want.pop("ts")[:16]
            assert got == want and got["request_id"] == event.request_id
        else:  # the timestamp's milliseconds may differ; the rest is the same line
            assert line[23:] == alone[23:] and f"request_id={event.request_id} " in line


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_each_ticks_lines_carry_that_ticks_time(
    fmt: logs.LogFormat, monkeypatch: pytest.MonkeyPatch, restore_logging: None
) -> None:
    stream = _access_lines_to_counting_stream(monkeypatch, fmt)
    sink = AccessLogSink()
    clock = iter([1_800_000_000.25, 1_800_000_061.5])
    monkeypatch.setattr("gateway.accesslog.time.time", lambda: next(clock))

    async def two_ticks() -> None:
        for event in _events(2):
            sink.record(event)
            await asyncio.sleep(0)

    asyncio.run(two_ticks())
    first, second = stream.writes
    if fmt == "json":
        assert orjson.loads(first)["ts"] == "2027-01-15T08:00:00.250Z"
        assert orjson.loads(second)["ts"] == "2027-01-15T08:01:01.500Z"
    else:
        assert first[19:23] == ",250" and second[19:23] == ",500" and first[:17] != second[:17]


def test_access_lines_outside_a_loop_are_written_at_once(
    monkeypatch: pytest.MonkeyPatch, restore_logging: None
) -> None:
    stream = _CountingStream()
    monkeypatch.setattr("sys.stderr", stream)
    logs.configure("info", "text")
    AccessLogSink().record(_events(1)[0])
    assert len(stream.writes) == 1 and "access request_id=req-0 " in stream.writes[0]
