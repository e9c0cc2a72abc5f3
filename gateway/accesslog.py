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
import time
from typing import Any, Protocol

from gateway.usage import UsageEvent

LOGGER = "gateway.access"
# The characters a client-chosen string may have and be written as is.
_PLAIN = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.:/@+,=-")
# A line's middle (api= to error=) is the same for every call of a kind, so it is made once per
# kind (`Parts`); client-chosen strings are in it, so at most this many are kept.
MAX_PARTS = 1024

# One kind of call's middle of the line, by (api, key_id, key_name, team, requested_model,
# model, thinking, stream, provider, upstream_model, attempts, status, error).
Parts = dict[tuple[Any, ...], str]


class AccessLine:
    """The log message of one call: formatted lazily, once."""

    __slots__ = ("_event", "_parts", "_text")

    def __init__(self, event: UsageEvent, parts: Parts | None = None) -> None:
        self._event = event
        self._parts = parts
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
        per call, so it skips the dict, takes the middle of the line (`_middle`) from the
        kind of call's cache, and formats only the call's own numbers."""
        if self._text is not None:
            return self._text
        e = self._event
        principal = e.principal
        key = (e.api, e.key_id, principal.key_name if principal is not None else None, e.team,
               e.requested_model, e.model, e.thinking, e.stream, e.provider, e.upstream_model,
               tuple(e.attempts), e.status, e.error_type)
        parts = self._parts
        middle = parts.get(key) if parts is not None else None
        if middle is None:
            middle = _middle(*key)
            if parts is not None:
                if len(parts) >= MAX_PARTS:
                    parts.clear()
                parts[key] = middle
        request_id = e.request_id
        if not (request_id and _PLAIN.issuperset(request_id)):
            request_id = _quote(request_id)
        ttft, usage, cost = e.ttft_s, e.usage, e.cost_usd
        if usage is None:
            tokens = ""
        else:
            hit, reasoning = usage.cache_hit_tokens, usage.reasoning_tokens
            tokens = (f" prompt_tokens={usage.prompt_tokens}"
                      f"{'' if hit is None else f' cache_hit_tokens={hit}'}"
                      f" completion_tokens={usage.completion_tokens}"
                      f"{'' if reasoning is None else f' reasoning_tokens={reasoning}'}"
                      f"{' estimated=true' if usage.estimated else ''}")
        self._text = text = (
            f"access request_id={request_id}{middle} latency_ms={e.latency_s * 1000:.1f}"
            f"{'' if ttft is None else f' ttft_ms={ttft * 1000:.1f}'}{tokens}"
            # 0.0000123, not 1.23e-05
            f"{'' if cost is None else ' cost_usd=' + f'{cost:.8f}'.rstrip('0').rstrip('.')}"
        )
        return text


def _middle(api: str, key_id: str | None, key_name: str | None, team: str | None,
            requested_model: str, model: str, thinking: str, stream: bool,
            provider: str | None, upstream_model: str | None,
            attempts: tuple[tuple[str, str], ...], status: str, error: str | None) -> str:
    """The line from ` api=` to `status=` (and `error=`): what one kind of call shares."""
    return (
        f" api={api}"
        f"{f' key_id={key_id}' if key_id else ''}"
        f"{f' key_name={_quoted(key_name)}' if key_name else ''}"
        f"{f' team={team}' if team else ''}"
        f"{f' requested_model={_quoted(requested_model)}' if requested_model else ''}"
        f"{f' model={model}' if model else ''}"
        f"{f' thinking={thinking}' if thinking else ''}"
        f"{' stream=true' if stream else ''}"
        f"{f' provider={provider}' if provider else ''}"
        f"{f' upstream_model={upstream_model}' if upstream_model else ''}"
        f"{' attempts=' + ','.join(f'{p}:{o}' for p, o in attempts) if attempts else ''}"
        f" status={status}"
        f"{f' error={_quoted(error)}' if error else ''}"
    )


def _quoted(text: str) -> str:
    """`text` as is when it has only plain characters, else quoted and escaped: one line."""
    if text and _PLAIN.issuperset(text):
        return text
    return _quote(text)


def _quote(text: str) -> str:
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
        self._parts: Parts = {}

    def record(self, event: UsageEvent) -> None:
        log = self._log
        if log.isEnabledFor(logging.INFO):
            handlers = log.handlers
            if len(handlers) == 1 and not log.propagate and isinstance(
                    handlers[0], AccessBatchHandler):
                handlers[0].add(AccessLine(event, self._parts))
            else:
                log.info(AccessLine(event, self._parts))
