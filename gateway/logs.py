"""Log setup for `gateway serve`: human lines or one JSON object per line (`--log-format`).

uvicorn is started with `log_config=None` so its lines go through the same handler and format
as the gateway's; the access line's fields (gateway/accesslog.py) become top-level JSON keys,
so a log shipper can filter on `status` or sum `cost_usd` without parsing text.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from typing import Any, Literal

import orjson

from gateway.accesslog import LOGGER as ACCESS_LOGGER
from gateway.accesslog import AccessBatchHandler, AccessLine

LogFormat = Literal["text", "json"]
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class TextFormatter(logging.Formatter):
    """TEXT_FORMAT, its date made once a second rather than once a line (the milliseconds
    still per line)."""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)
        self._stamp: tuple[int, str] = (-1, "")

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        if datefmt is not None:
            return super().formatTime(record, datefmt)
        second, stamp = self._stamp
        if int(record.created) != second:
            second = int(record.created)
            stamp = time.strftime(self.default_time_format, self.converter(second))
            self._stamp = (second, stamp)
        return f"{stamp},{int(record.msecs):03d}"  # as default_msec_format "%s,%03d"


class JsonFormatter(logging.Formatter):
    """`{"ts", "level", "logger", "message", ...}`; an access line adds its fields."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": _iso(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if isinstance(record.msg, AccessLine):
            out["message"] = "access"
            out.update((k, v) for k, v in record.msg.fields().items() if v is not None)
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(out, default=str).decode()

    def format_access(self, record: logging.LogRecord, lines: list[AccessLine]) -> str:
        """A batch of access lines (gateway/accesslog.py), one JSON object per line, as
        `format` would write each."""
        head = {"ts": _iso(record.created), "level": "info", "logger": record.name,
                "message": "access"}
        dumps = orjson.dumps
        return "".join(
            dumps({**head, **{k: v for k, v in line.fields().items() if v is not None}},
                  default=str).decode() + "\n"
            for line in lines)


def _iso(created: float) -> str:
    seconds = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(created))
    return f"{seconds}.{int(created % 1 * 1000):03d}Z"


_ENV = ("SWITCHYARD_LOG_LEVEL", "SWITCHYARD_LOG_FORMAT", "SWITCHYARD_ACCESS_LOG")


def configure(level: str = "info", fmt: LogFormat = "text", *, access_log: bool = True) -> None:
    """One stderr handler on the root logger; uvicorn's loggers propagate to it. Access lines
    have their own handler on stderr with the same format, which writes a tick's lines at once
    (gateway/accesslog.py)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_formatter(fmt))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error"):
        uv = logging.getLogger(name)
        uv.handlers.clear()
        uv.propagate = True
        uv.setLevel(logging.NOTSET)  # the root's level, until uvicorn sets its --log-level
    # The gateway writes its own access lines. uvicorn's protocol writes its own too, and
    # skips the gateway's one-write response head, whenever this logger has a handler up its
    # chain: none, also in a `--workers` worker, which configures logging after uvicorn did.
    uvicorn_access = logging.getLogger("uvicorn.access")
    uvicorn_access.handlers.clear()
    uvicorn_access.propagate = False
    # Alembic announces its plugins on import and its steps on every start (a dozen INFO
    # lines); the usage store says it in one (gateway/db/store.py).
    logging.getLogger("alembic").setLevel(logging.WARNING)
    access = logging.getLogger(ACCESS_LOGGER)
    access.setLevel(logging.NOTSET if access_log else logging.WARNING)
    for old in list(access.handlers):
        access.removeHandler(old)
    batched = AccessBatchHandler(sys.stderr)
    batched.setFormatter(_formatter(fmt))
    access.addHandler(batched)
    access.propagate = False


def _formatter(fmt: LogFormat) -> logging.Formatter:
    return JsonFormatter() if fmt == "json" else TextFormatter()


def export_settings(level: str, fmt: LogFormat, *, access_log: bool) -> None:
    """For `--workers N`: uvicorn spawns fresh processes, which read these back
    (`configure_from_env`, called by the workers' app factory)."""
    os.environ.update(zip(_ENV, (level, fmt, "1" if access_log else "0"), strict=True))


def configure_from_env() -> None:
    level, fmt, access = (os.environ.get(name) for name in _ENV)
    if level is not None:
        configure(level, "json" if fmt == "json" else "text", access_log=access != "0")
