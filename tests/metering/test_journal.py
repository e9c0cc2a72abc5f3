"""The usage journal: rows on disk from `record()`, trimmed once stored, replayed by the next
process when one dies with rows still in memory."""

from __future__ import annotations

import sqlite3
from collections import Counter
from pathlib import Path

import orjson

from gateway.db.engine import async_url
from gateway.metering.journal import Journal
from gateway.metering.rows import build_row
from gateway.metering.spool import Spool
from gateway.metering.writer import MeteringWriter
from tests.metering.rollup_oracle import assert_rollups_match
from tests.metering.test_writer import PRICES, FlakyStore, event, stored


def journal_files(directory: Path) -> list[Path]:
    return sorted(directory.glob("journal-*.jsonl"))


def make(tmp_path: Path, **kwargs: object) -> tuple[MeteringWriter, FlakyStore, Spool]:
    store = FlakyStore(async_url(None, tmp_path / "usage.db"))
    spool = Spool(tmp_path / "spool")
    writer = MeteringWriter(store, spool, PRICES, journal=Journal(spool),
                            **{"flush_interval": 0.01, "retry_max": 0.05, **kwargs})  # type: ignore[arg-type]
    return writer, store, spool


async def test_a_recorded_row_is_on_disk_before_record_returns(tmp_path: Path) -> None:
    writer, _, spool = make(tmp_path, flush_interval=60)
    await writer.start()
    writer.record(event(1))
    files = journal_files(spool.directory)
    assert len(files) == 1 and b'"request_id":"req-1"' in files[0].read_bytes()
    await writer.close()


async def test_rows_are_trimmed_once_stored_and_the_journal_goes_on_close(tmp_path: Path) -> None:
    writer, _, spool = make(tmp_path)
    await writer.start()
    for i in range(50):
        writer.record(event(i))
    assert journal_files(spool.directory)
    await writer.close()
    assert writer.journal is not None and writer.journal.pending == 0
    assert journal_files(spool.directory) == []
    assert len(stored(tmp_path)) == 50


def test_segments_rotate_and_finished_ones_are_deleted(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool")
    journal = Journal(spool, segment_rows=2, fsync="off")
    segments = [journal.append(build_row(event(i), PRICES)) for i in range(5)]
    assert segments == [1, 1, 2, 2, 3]
    assert len(journal_files(spool.directory)) == 3
    journal.settled(Counter(segments[:2]))
    assert len(journal_files(spool.directory)) == 2  # segment 1 is done
    journal.settled(Counter(segments[2:]))
    assert journal.pending == 0
    journal.close()
    assert journal_files(spool.directory) == []


async def test_a_dead_process_journal_is_replayed_once(tmp_path: Path) -> None:
    """What kill -9 leaves: a journal and its lock, rows never stored. The next writer stores
    each exactly once, also the ones the dead process had already stored."""
    dead = Spool(tmp_path / "spool")
    dead._pid = 999_999  # another process's files
    journal = Journal(dead)
    rows = [build_row(event(i), PRICES) for i in range(20)]
    for row in rows:
        journal.append(row)
    journal._close_fd()  # what the kernel does for a killed process: files closed,
    dead.close()  # its lock released
    writer, store, spool = make(tmp_path)
    await store.insert(rows[:5])  # committed before the kill, not yet trimmed
    await writer.start()
    assert writer.spooled_rows == 20  # adopted
    assert await writer.flush()  # until the spool is replayed
    await writer.close()
    assert sorted(r for r, _ in stored(tmp_path)) == sorted(f"req-{i}" for i in range(20))
    with sqlite3.connect(tmp_path / "usage.db") as db:
        assert db.execute("SELECT count(*) FROM usage").fetchone()[0] == 20
    assert assert_rollups_match(tmp_path / "usage.db", PRICES) == 20  # the 5 not twice
    assert journal_files(spool.directory) == []


def test_a_segment_is_each_rows_json_on_a_line_of_its_own(tmp_path: Path) -> None:
    """What `Spool.read` replays: one orjson document and a newline per row, nothing else."""
    spool = Spool(tmp_path / "spool")
    spool.open()
    journal = Journal(spool, fsync="off")
    rows = [build_row(event(i), PRICES) for i in range(3)]
    for row in rows:
        journal.append(row)
    (segment,) = journal_files(spool.directory)
    assert segment.read_bytes() == b"".join(orjson.dumps(row) + b"\n" for row in rows)
    journal.settled(Counter({1: 3}))
    journal.close()
    spool.close()
