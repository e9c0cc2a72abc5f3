"""The metering writer's own CPU per row, as callgrind instructions of the gateway process.

    PYTHONHASHSEED=0 valgrind --tool=callgrind --callgrind-out-file=/tmp/cg \\
        .venv/bin/python bench/writer_cpu.py --rows 5000 --build 5000 [--checkout DIR]
    (then again with --rows 0 --build 5000; per row = (summary of N - summary of 0) / N)

(without valgrind it also prints the process CPU per row, user + system, from the first record()
to the last commit: interleave checkouts for a before/after), or both callgrind runs and the
division at once (each checkout in turn):

    bench/writer_cpu.py --compare [--rows 5000] CHECKOUT...

Records `--rows` events of bench/writer.py (50 keys, varied latencies: a batch touches a few
hundred rollup rows) through a MeteringWriter with a journal (fsync off), `--batch` at a time,
and waits for each batch's commit before recording the next: record(), the journal, the queue,
the rollup sums, the raw insert and the rollup upserts, all in this process. Postgres is another
process and is not counted. Every run builds the same events, starts the same writer and then
freezes the collector as `gateway serve` does (gateway/gctune.py), so the difference of N and 0
rows is the rows' cost alone; a wrapped `UsageStore.insert` says when a batch is stored (no
polling: the count is repeatable).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _setup_path() -> None:
    if "--checkout" in sys.argv:
        sys.path.insert(0, sys.argv[sys.argv.index("--checkout") + 1])
    else:
        sys.path.insert(0, str(HERE.parent))


async def run(server: str, rows: int, batch: int, build: int) -> None:
    import asyncpg
    from writer import event  # bench/writer.py

    from gateway.db.engine import async_url
    from gateway.db.store import UsageStore
    from gateway.gctune import freeze_after_startup
    from gateway.metering.journal import Journal
    from gateway.metering.prices import PriceBook
    from gateway.metering.spool import Spool
    from gateway.metering.writer import MeteringWriter

    base = server.rsplit("/", 1)[0]
    name = f"switchyard_wcpu_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(server)
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        events = [event(i) for i in range(max(rows, build))]
        store = UsageStore(async_url(f"{base}/{name}", "unused"))
        stored = asyncio.Event()
        insert = store.insert

        async def insert_and_tell(*args: object, **kwargs: object) -> int:
            try:
                return await insert(*args, **kwargs)  # type: ignore[arg-type]
            finally:
                stored.set()

        store.insert = insert_and_tell  # type: ignore[method-assign]
        with tempfile.TemporaryDirectory() as spool_dir:
            spool = Spool(Path(spool_dir))
            writer = MeteringWriter(store, spool, PriceBook.load(), batch_size=batch,
                                    flush_interval=3600.0, queue_size=batch * 2,
                                    journal=Journal(spool, fsync="off"))
            await writer.start()
            freeze_after_startup()  # as `gateway serve` does, after the events are built
            cpu = time.process_time()
            for start in range(0, rows, batch):
                stored.clear()
                for ev in events[start:start + batch]:
                    writer.record(ev)
                await stored.wait()
            cpu = time.process_time() - cpu
            await writer.close()
        conn = await asyncpg.connect(f"{base}/{name}")
        count = await conn.fetchval("SELECT count(*) FROM usage")
        await conn.close()
        if count != rows:
            raise SystemExit(f"stored {count} rows, expected {rows}")
        print(f"{rows} rows stored; process CPU (user + system) from the first record() to the "
              f"last commit: {cpu / max(rows, 1) * 1e6:.2f} us/row")
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


def instructions(checkout: str, rows: int, batch: int, url: str, build: int) -> int:
    """One callgrind run of this script: the process's instruction count."""
    with tempfile.TemporaryDirectory() as out:
        cg = f"{out}/cg"
        subprocess.run(
            ["valgrind", "--tool=callgrind", f"--callgrind-out-file={cg}", sys.executable,
             __file__, "--rows", str(rows), "--batch", str(batch), "--url", url,
             "--build", str(build),
             "--checkout", checkout],
            check=True, env={**os.environ, "PYTHONHASHSEED": "0"},
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for line in Path(cg).read_text().splitlines():
            if line.startswith("summary:"):
                return int(line.split()[1])
    raise SystemExit("no summary in the callgrind output")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=os.environ.get(
        "BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"))
    parser.add_argument("--rows", type=int, default=5000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--build", type=int, default=0,
                        help="events built (at least --rows): the same in the N and 0 runs")
    parser.add_argument("--checkout", help="a directory holding the gateway/ to measure")
    parser.add_argument("--compare", action="store_true",
                        help="callgrind N and 0 rows for each checkout given")
    parser.add_argument("checkouts", nargs="*")
    args = parser.parse_args()
    if args.compare:
        for checkout in args.checkouts:
            zero = instructions(checkout, 0, args.batch, args.url, args.rows)
            many = instructions(checkout, args.rows, args.batch, args.url, args.rows)
            print(f"{checkout}: {(many - zero) // args.rows:,} instructions/row "
                  f"({args.rows} rows, batch {args.batch})", flush=True)
        return
    _setup_path()
    import uvloop

    uvloop.run(run(args.url, args.rows, args.batch, args.build))


if __name__ == "__main__":
    main()
