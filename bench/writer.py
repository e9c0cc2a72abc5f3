"""Metering writer throughput: rows/s from `record()` to committed Postgres rows.

    .venv/bin/python bench/writer.py [--rows 100000] [--batch-size 1000] [--url postgresql://...]
        [--database NAME] [--checkout DIR]

Creates a scratch database (switchyard_bench_<random>) on the server in --url (default
postgres@127.0.0.1:5432), migrates it, records --rows usage events as fast as one event loop
can, waits until every row is committed, counts them, and drops the database. Prints the
rows/s and the line to paste into bench/RESULTS-metering.md. `--database` writes into an
existing database instead (e.g. usage_scale.py's 20M-row one; the rows stay), `--checkout`
runs another checkout's gateway/ (a before/after pair in one session of runs).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import sys
import tempfile
import time
from pathlib import Path

import asyncpg
import uvloop

if "--checkout" in sys.argv:  # before the gateway imports below
    sys.path.insert(0, sys.argv[sys.argv.index("--checkout") + 1])
else:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gateway.db.engine import async_url
from gateway.db.store import UsageStore
from gateway.metering.prices import PriceBook
from gateway.metering.spool import Spool
from gateway.metering.writer import MeteringWriter
from gateway.usage import Usage, UsageEvent

RUN = secrets.token_hex(3)  # request ids differ between runs into one database


def event(i: int) -> UsageEvent:
    """Calls of 50 keys in 5 teams, each key with its own model, API and thinking mode (as in
    usage_scale.py), 3% failed, latencies spread over the histogram: a batch touches a few
    hundred rollup rows, as a busy gateway's does."""
    k = i % 50
    failed = i % 33 == 0
    return UsageEvent(
        request_id=f"bench-{RUN}-{i}", requested_model="deepseek-chat",
        model="deepseek-v4-pro" if k % 7 == 0 else "deepseek-v4-flash",
        thinking=("off", "high", "max")[k % 3], stream=bool(i % 2),
        status="error" if failed else "ok", provider=("deepseek", "openrouter")[i % 10 == 0],
        upstream_model="deepseek-v4-flash", attempts=[("deepseek", "200")],
        usage=Usage(prompt_tokens=1200, completion_tokens=300, cache_hit_tokens=1000,
                    cache_miss_tokens=200, reasoning_tokens=120),
        key_id=f"key-{k}", team=f"team-{k % 5}", client_user="bench",
        latency_s=0.2 + (i % 97) / 10, ttft_s=0.05 + (i % 89) / 100,
        api=("openai.chat", "anthropic.messages", "openai.responses", "ollama.chat")[k % 4],
    )


async def drive(writer: MeteringWriter, rows: int) -> float:
    """Start the writer, record `rows` events, wait until all are stored: the seconds taken
    from the first `record()` on."""
    await writer.start()
    events = [event(i) for i in range(rows)]
    started = time.perf_counter()
    for i, ev in enumerate(events):
        writer.record(ev)
        if i % 1000 == 999:
            await asyncio.sleep(0)  # let the writer run, as a busy gateway would
    if not await writer.flush(within=600):
        raise SystemExit("the writer did not drain in 600 s")
    return time.perf_counter() - started


async def run(server: str, rows: int, batch_size: int, queue_size: int,
              database: str | None) -> float:
    base = server.rsplit("/", 1)[0]
    name = database or f"switchyard_bench_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(server)
    if database is None:
        await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        url = async_url(f"{base}/{name}", "unused")
        conn = await asyncpg.connect(f"{base}/{name}")
        before = await conn.fetchval("SELECT count(*) FROM usage") if database else 0
        with tempfile.TemporaryDirectory() as spool_dir:
            writer = MeteringWriter(UsageStore(url), Spool(spool_dir), PriceBook.load(),
                                    batch_size=batch_size, flush_interval=0.05,
                                    queue_size=queue_size)
            elapsed = await drive(writer, rows)
            spilled = writer.rows_stored
            await writer.close()
        stored = await conn.fetchval("SELECT count(*) FROM usage") - before
        await conn.close()
        if stored != rows:
            raise SystemExit(f"stored {stored} rows, expected {rows}")
        print(f"{rows} rows in {elapsed:.2f} s = {rows / elapsed:,.0f} rows/s "
              f"(batch {batch_size}, queue {queue_size}, stored by writer {spilled}, "
              f"into {'a fresh database' if database is None else f'{name} ({before:,} rows)'})")
        return rows / elapsed
    finally:
        if database is None:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=os.environ.get(
        "BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"),
        help="a Postgres server (any database on it; a scratch one is created)")
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--queue-size", type=int, default=200_000)
    parser.add_argument("--database", help="write into this existing, migrated database")
    parser.add_argument("--checkout", help="a directory holding the gateway/ to measure")
    args = parser.parse_args()
    uvloop.run(run(args.url, args.rows, args.batch_size, args.queue_size, args.database))


if __name__ == "__main__":
    main()
