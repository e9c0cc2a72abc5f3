import asyncio
import logging
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from gateway import logs
from gateway.db import migrate
from gateway.db.engine import async_url, create_engine
from gateway.db.store import UsageStore


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
    logging.getLogger("gateway.access").setLevel(logging.NOTSET)
    logging.getLogger("alembic").setLevel(logging.NOTSET)


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
