"""The local fallback when the database is down or slow: append-only JSON-lines files.

Each process appends to its own live file (`usage-<pid>.jsonl`) in the spool directory and
holds `usage-<pid>.lock` for its lifetime, so several workers can share one directory. To
replay, the owner renames its live file to a numbered `replay-` file (a rename is atomic, and
appends reopen the live path each time, so no row can land in a file being replayed); replay
files are read in order and deleted once stored. At start, files of processes that no longer
hold their lock are adopted. Rows carry their own unique id, so a replay repeated after a crash
stores nothing twice."""

from __future__ import annotations

import fcntl
import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO, Any

import orjson

log = logging.getLogger("gateway.metering")

LEGACY_API = "openai.chat"  # the API of every row built before rows carried one


@dataclass(slots=True)
class ReplayFile:
    path: Path
    rows: int
    offset: int = 0  # bytes already stored


class Spool:
    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        self._pid = os.getpid()
        self._live = self.directory / f"usage-{self._pid}.jsonl"
        self._rejected = self.directory / "rejected.jsonl"
        self._lock: IO[bytes] | None = None
        self._replay: list[ReplayFile] = []
        self._live_rows = 0
        self._seq = 0
        self.spooled_total = 0  # rows ever appended by this process (tests, metrics)

    @property
    def pid(self) -> int:
        return self._pid

    @property
    def pending(self) -> int:
        """Rows spooled and not yet stored."""
        return self._live_rows + sum(f.rows for f in self._replay)

    def open(self) -> None:
        """Adopt what dead processes (or this pid before a restart) left behind. Nothing is
        created on disk until a row has to be spooled."""
        if not self.directory.is_dir():
            return
        self._take_lock()
        for path in sorted(self.directory.glob("*.jsonl"), key=_age):
            if path.name == self._rejected.name or not self._orphaned(path):
                continue
            self._adopt(path)
        for lock in self.directory.glob("usage-*.lock"):  # left by killed processes
            if lock.stem != f"usage-{self._pid}":
                self._orphaned(lock)
        if self.pending:
            log.warning("metering: %d spooled rows from an earlier run will be replayed",
                        self.pending)

    def _take_lock(self) -> None:
        if self._lock is None:
            self.directory.mkdir(parents=True, exist_ok=True)
            self._lock = open(self.directory / f"usage-{self._pid}.lock", "ab")  # noqa: SIM115
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)

    def close(self) -> None:
        if self._lock is not None:
            fcntl.flock(self._lock, fcntl.LOCK_UN)
            self._lock.close()
            self._lock = None
            (self.directory / f"usage-{self._pid}.lock").unlink(missing_ok=True)

    def append(self, rows: Iterable[dict[str, Any]]) -> None:
        """Synchronous and short (a page-cache write): safe from the event loop."""
        data = b"".join(orjson.dumps(row) + b"\n" for row in rows)
        if not data:
            return
        self._take_lock()
        with open(self._live, "ab") as out:
            out.write(data)
        count = data.count(b"\n")
        self._live_rows += count
        self.spooled_total += count

    def reject(self, row: dict[str, Any]) -> None:
        """A row the database refused as invalid: kept for a human, never retried."""
        self._take_lock()
        with open(self._rejected, "ab") as out:
            out.write(orjson.dumps(row) + b"\n")

    def claim(self) -> list[ReplayFile]:
        """Close the live file for replay (new appends start a new one); the files to replay,
        oldest first."""
        if self._live_rows and self._live.exists():
            self._seq += 1
            target = self.directory / f"replay-{self._pid}-{self._seq:06d}.jsonl"
            os.replace(self._live, target)
            self._replay.append(ReplayFile(target, self._live_rows))
            self._live_rows = 0
        return list(self._replay)

    @staticmethod
    def read(file: ReplayFile, limit: int) -> tuple[list[dict[str, Any]], int]:
        """Up to `limit` rows from the file's offset, and the offset after them (blocking:
        call in a thread)."""
        rows: list[dict[str, Any]] = []
        with open(file.path, "rb") as src:
            src.seek(file.offset)
            offset = file.offset
            while len(rows) < limit:
                line = src.readline()
                if not line:
                    break
                offset += len(line)
                row = _parse(line, file.path)
                if row is not None:
                    rows.append(row)
        return rows, offset

    def advance(self, file: ReplayFile, offset: int, stored: int) -> bool:
        """Record progress; True (and the file deleted) once all of it is stored."""
        file.offset = offset
        file.rows = max(0, file.rows - stored)
        if file.offset < file.path.stat().st_size:
            return False
        file.path.unlink(missing_ok=True)
        self._replay.remove(file)
        return True

    def _orphaned(self, path: Path) -> bool:
        name = path.stem
        parts = name.split("-")
        if len(parts) < 2 or not parts[1].isdigit():
            return False
        pid = int(parts[1])
        if pid == self._pid:
            return True
        lock_path = self.directory / f"usage-{pid}.lock"
        if not lock_path.exists():
            return True
        with open(lock_path, "ab") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                return False  # its owner is alive and replays it
            fcntl.flock(lock, fcntl.LOCK_UN)
        lock_path.unlink(missing_ok=True)
        return True

    def _adopt(self, path: Path) -> None:
        self._seq += 1
        target = self.directory / f"replay-{self._pid}-{self._seq:06d}.jsonl"
        try:
            os.replace(path, target)
        except FileNotFoundError:
            return  # another process adopted it first
        with open(target, "rb") as src:
            rows = sum(1 for _ in src)
        self._replay.append(ReplayFile(target, rows))


def _parse(line: bytes, path: Path) -> dict[str, Any] | None:
    try:
        row = orjson.loads(line)
    except orjson.JSONDecodeError:
        log.error("metering: skipping an unreadable line in %s", path)  # a torn last write
        return None
    if not isinstance(row, dict):
        return None
    if isinstance(row.get("ts"), str):
        row["ts"] = datetime.fromisoformat(row["ts"])
    # Spooled before usage rows had `api` (a gateway upgraded with rows still spooled): those
    # were all OpenAI Chat calls. Every row of a batch must carry the same columns.
    row.setdefault("api", LEGACY_API)
    return row


def _age(path: Path) -> tuple[float, str]:
    try:
        return path.stat().st_mtime, path.name
    except OSError:
        return 0.0, path.name
