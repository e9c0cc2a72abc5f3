"""The access log: one INFO line per call, from the call's usage event.

It is one more usage sink, so it sees exactly the calls that metering sees (refusals included)
with the same cost. On the hot path it does nothing but a level check and one `log.info`: the
line is formatted by the handler only when it is emitted (`AccessLine.__str__`), and a JSON
formatter reads the fields without parsing it (`AccessLine.fields`).

Under `gateway serve` (gateway/logs.py) the access logger has its own `AccessBatchHandler`:
the lines of one event-loop tick are formatted together and written with one `write()`, and
no `LogRecord` is made per line. A `log.info` per line (record, caller lookup, handler lock,
time formatting, a write syscall) was ~7% of the gateway's core under load (bench/profile.py).

Nothing secret is in it: the key's id and name (never the key), the team, models, provider,
attempts, timings, tokens and cost. Strings a client chose (the requested model, the key's
name) are quoted when they hold spaces, quotes or control characters, so a line stays one line.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from typing import Any, Protocol

from gateway.usage import Usage, UsageEvent

LOGGER = "gateway.access"
_PLAIN = re.compile(r"^[A-Za-z0-9_.:/@+,=-]+$")


class AccessLine:
    """The log message of one call: formatted lazily, once."""

    __slots__ = ("_event", "_text")

    def __init__(self, event: UsageEvent) -> None:
        self._event = event
        self._text: str | None = None

    def fields(self) -> dict[str, Any]:
        event = self._event
        usage = event.usage
        principal = event.principal
        return {
            "request_id": event.request_id,
            "api": event.api,
            "key_id": event.key_id,
            "key_name": principal.key_name if principal is not None else None,
            "team": event.team,
            "requested_model": event.requested_model or None,
            "model": event.model or None,
            "thinking": event.thinking or None,
            "stream": event.stream,
            "provider": event.provider,
            "upstream_model": event.upstream_model,
            "attempts": ",".join(f"{p}:{o}" for p, o in event.attempts) or None,
            "status": event.status,
            "error": event.error_type,
            "latency_ms": round(event.latency_s * 1000, 1),
            "ttft_ms": round(event.ttft_s * 1000, 1) if event.ttft_s is not None else None,
            "prompt_tokens": usage.prompt_tokens if usage is not None else None,
            "cache_hit_tokens": usage.cache_hit_tokens if usage is not None else None,
            "completion_tokens": usage.completion_tokens if usage is not None else None,
            "reasoning_tokens": usage.reasoning_tokens if usage is not None else None,
            "estimated": usage.estimated if usage is not None and usage.estimated else None,
            "cost_usd": round(event.cost_usd, 8) if event.cost_usd is not None else None,
        }

    def __str__(self) -> str:
        """The same fields as `fields()`, in the same order, written directly: this runs once
        per call, so it skips the dict, quotes only the strings a client chose, and builds the
        line as one f-string (each optional field an empty string when absent)."""
        if self._text is not None:
            return self._text
        e = self._event
        principal = e.principal
        key_name = principal.key_name if principal is not None else None
        attempts = e.attempts
        usage = e.usage
        cost = e.cost_usd
        self._text = text = (
            f"access request_id={_quoted(e.request_id)} api={e.api}"
            f"{f' key_id={e.key_id}' if e.key_id else ''}"
            f"{f' key_name={_quoted(key_name)}' if key_name else ''}"
            f"{f' team={e.team}' if e.team else ''}"
            f"{f' requested_model={_quoted(e.requested_model)}' if e.requested_model else ''}"
            f"{f' model={e.model}' if e.model else ''}"
            f"{f' thinking={e.thinking}' if e.thinking else ''}"
            f"{' stream=true' if e.stream else ''}"
            f"{f' provider={e.provider}' if e.provider else ''}"
            f"{f' upstream_model={e.upstream_model}' if e.upstream_model else ''}"
            f"{' attempts=' + _attempts(attempts) if attempts else ''}"
            f" status={e.status}"
            f"{f' error={_quoted(e.error_type)}' if e.error_type else ''}"
            f" latency_ms={e.latency_s * 1000:.1f}"
            f"{f' ttft_ms={e.ttft_s * 1000:.1f}' if e.ttft_s is not None else ''}"
            f"{_usage(usage) if usage is not None else ''}"
            # 0.0000123, not 1.23e-05
            f"{' cost_usd=' + f'{cost:.8f}'.rstrip('0').rstrip('.') if cost is not None else ''}"
        )
        return text


def _attempts(attempts: list[tuple[str, str]]) -> str:
    if len(attempts) == 1:
        provider, outcome = attempts[0]
        return f"{provider}:{outcome}"
    return ",".join(f"{p}:{o}" for p, o in attempts)


def _usage(usage: Usage) -> str:
    hit, reasoning = usage.cache_hit_tokens, usage.reasoning_tokens
    return (f" prompt_tokens={usage.prompt_tokens}"
            f"{f' cache_hit_tokens={hit}' if hit is not None else ''}"
            f" completion_tokens={usage.completion_tokens}"
            f"{f' reasoning_tokens={reasoning}' if reasoning is not None else ''}"
            f"{' estimated=true' if usage.estimated else ''}")


def _quoted(text: str) -> str:
    if _PLAIN.match(text):
        return text
    return '"' + text.encode("unicode_escape").decode("ascii").replace('"', '\\"') + '"'


class BatchFormatter(Protocol):
    """A formatter that writes a batch of access lines itself (gateway/logs.py's JSON one)."""

    def format_access(self, record: logging.LogRecord, lines: list[AccessLine]) -> str: ...


class AccessBatchHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes the access lines of one event-loop tick at once, each line formatted as the
    handler's formatter would format it, all with the tick's timestamp. Other records sent to
    it (by `log.info` elsewhere) are emitted one by one as usual."""

    def __init__(self, stream: Any = None) -> None:
        super().__init__(stream)
        self._lines: list[AccessLine] = []
        # Each tick's record is this one with the time of the tick: a LogRecord made anew (its
        # caller, thread and process looked up) was 40% of a one-line tick, and a copy of one
        # a quarter. Nothing keeps it past the write; formatting sets the same fields anew.
        self._template = logging.LogRecord(LOGGER, logging.INFO, __file__, 0, "", None, None)
        self._made = (self._template.created, self._template.relativeCreated)

    def add(self, line: AccessLine) -> None:
        lines = self._lines
        lines.append(line)
        if len(lines) > 1:
            return  # a write is already scheduled for this tick
        try:
            asyncio.get_running_loop().call_soon(self.write_lines)
        except RuntimeError:  # no loop in this thread: write now
            self.write_lines()

    def write_lines(self) -> None:
        lines, self._lines = self._lines, []
        if not lines:
            return
        record = self._record()
        formatter = self.formatter or logging.Formatter()
        batch = getattr(formatter, "format_access", None)
        if batch is not None:
            text = batch(record, lines)
        else:  # a format whose message comes last: its prefix once, then each line
            prefix = formatter.format(record)
            text = "".join(f"{prefix}{line}\n" for line in lines)
        try:
            self.acquire()
            try:
                self.stream.write(text)
                self.stream.flush()
            finally:
                self.release()
        except Exception:
            self.handleError(record)

    def _record(self) -> logging.LogRecord:
        """The template with the time now, set as LogRecord sets it."""
        record = self._template
        created, relative = self._made
        now = time.time()
        record.created = now
        record.msecs = int((now - int(now)) * 1000) + 0.0
        record.relativeCreated = relative + (now - created) * 1000
        return record

    def flush(self) -> None:
        self.write_lines()  # at exit (logging.shutdown) nothing stays buffered
        super().flush()


class AccessLogSink:
    """A usage sink that logs each call at INFO on `gateway.access`."""

    def __init__(self) -> None:
        self._log = logging.getLogger(LOGGER)

    def record(self, event: UsageEvent) -> None:
        log = self._log
        if log.isEnabledFor(logging.INFO):
            handlers = log.handlers
            if len(handlers) == 1 and not log.propagate and isinstance(
                    handlers[0], AccessBatchHandler):
                handlers[0].add(AccessLine(event))
            else:
                log.info(AccessLine(event))
