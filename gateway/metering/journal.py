"""The usage journal: every row on local disk before its response's last byte, so a process
killed outright (kill -9, OOM) loses no usage.

The writer batches rows in memory for up to `flush_interval` before the database sees them;
the journal closes that window. `append` is one `write()` on an O_APPEND file descriptor (the
row reaches the kernel's page cache, which outlives the process); `fsync` says when it is also
forced to the device: `off` (survives a process crash, not a power cut), `interval` (the
background task syncs every `fsync_interval` seconds), `always` (each row; slowest).

Segments (`journal-<pid>-<n>.jsonl`) live in the spool directory and follow the spool's rules:
the process holds the spool's lock while it writes, and a segment left by a dead process is
adopted and replayed by the next one to start (`Spool.open`), with row ids keeping a replay
from storing anything twice. A segment is deleted once each of its rows is stored in the
database or moved to the spool. Rows written to the database but not yet trimmed when the
process dies are replayed and skipped as known ids.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections import Counter
from typing import Any, Literal

import orjson

from gateway.metering.spool import Spool

log = logging.getLogger("gateway.metering")

FsyncPolicy = Literal["off", "interval", "always"]


class Journal:
    def __init__(self, spool: Spool, *, fsync: FsyncPolicy = "interval",
                 segment_rows: int = 10_000) -> None:
        self._spool = spool
        self.fsync_policy = fsync
        self._segment_rows = segment_rows
        self._fd: int | None = None
        self._segment = 0
        self._segment_written = 0
        self._unsynced = False
        self._open: Counter[int] = Counter()  # segment -> rows not yet stored or spooled
        self.rows_written = 0
        self._failing = False

    @property
    def pending(self) -> int:
        return sum(self._open.values())

    def append(self, row: dict[str, Any]) -> int:
        """Write one row; returns its segment (0: not journaled, the disk refused), to hand
        back to `settled` once the row is stored. Synchronous and short (one write syscall):
        safe from the event loop."""
        try:
            if self._fd is None or self._segment_written >= self._segment_rows:
                self._rotate()
            assert self._fd is not None
            os.write(self._fd, orjson.dumps(row, option=orjson.OPT_APPEND_NEWLINE))
        except OSError as exc:
            if not self._failing:
                log.error("metering: cannot write the usage journal (%s); rows stay in memory "
                          "until stored", exc)
            self._failing = True
            return 0
        self._failing = False
        self._segment_written += 1
        self._open[self._segment] += 1
        self.rows_written += 1
        if self.fsync_policy == "always":
            os.fsync(self._fd)
        else:
            self._unsynced = True
        return self._segment

    def sync(self) -> None:
        """For the `interval` policy (blocking: call from a thread)."""
        fd = self._fd
        if fd is not None and self._unsynced:
            self._unsynced = False
            with contextlib.suppress(OSError):  # closed meanwhile: synced on close
                os.fsync(fd)

    def settled(self, segments: Counter[int]) -> None:
        """These rows are in the database or the spool: trim every finished segment."""
        for segment, count in segments.items():
            if not segment:  # rows the journal could not take
                continue
            left = self._open[segment] - count
            if left > 0:
                self._open[segment] = left
                continue
            del self._open[segment]
            if segment != self._segment:
                self._path(segment).unlink(missing_ok=True)
        if not self._open and self._segment_written >= self._segment_rows:
            self._rotate()

    def close(self) -> None:
        """On a clean shutdown every row is stored or spooled: the journal goes."""
        self._close_fd()
        if not self._open:
            self._path(self._segment).unlink(missing_ok=True)
        else:
            log.warning("metering: %d journaled rows not stored; replayed at next start",
                        self.pending)

    def _rotate(self) -> None:
        previous = self._segment
        self._close_fd()
        if previous and not self._open.get(previous):
            self._path(previous).unlink(missing_ok=True)
        self._spool._take_lock()  # the lock tells other processes this journal is alive
        self._segment += 1
        self._segment_written = 0
        self._fd = os.open(self._path(self._segment),
                           os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)

    def _close_fd(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            if self.fsync_policy != "off":
                os.fsync(fd)
            os.close(fd)

    def _path(self, segment: int) -> Any:
        return self._spool.directory / f"journal-{self._spool.pid}-{segment:06d}.jsonl"
