"""kill -9 under load loses no usage row: the journal (gateway/metering/journal.py) holds
every answered call's row before its response ends, and the next process replays it.

The flush interval is long (5 s), so without the journal every row of the run would still be
in memory when the process dies.
"""

from __future__ import annotations

import secrets
import threading
import time
from pathlib import Path

import httpx

from gateway.metering.prices import PriceBook
from tests.db import pg
from tests.db.pg import query
from tests.e2e.conftest import Upstreams
from tests.e2e.process import start_gateway
from tests.metering.rollup_oracle import assert_rollups_match

pg_database = pg.pg_database
pg_url = pg.pg_url


def test_kill_9_under_load_loses_no_row_and_duplicates_none(
    tmp_path: Path, upstreams: Upstreams, pg_url: str
) -> None:
    yaml = f"metering: {{flush_interval: 5, spool_path: {tmp_path / 'spool'}}}\n"
    proc, url = start_gateway(tmp_path, upstreams, pg_url, yaml)
    prefix = secrets.token_hex(4)
    answered: list[str] = []
    lock = threading.Lock()
    stop = threading.Event()

    def client(n: int) -> None:
        with httpx.Client(base_url=url, timeout=5) as http:
            i = 0
            while not stop.is_set():
                rid = f"{prefix}-{n}-{i}"
                i += 1
                try:
                    response = http.post("/v1/chat/completions", headers={"x-request-id": rid},
                                         json={"model": "deepseek-v4-flash", "messages": [
                                             {"role": "user", "content": "hi"}]})
                except httpx.HTTPError:
                    return  # the process is gone
                if response.status_code == 200:
                    with lock:
                        answered.append(rid)
                time.sleep(0.02)  # ~4 clients x 50/s: about 200 requests a second

    threads = [threading.Thread(target=client, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    time.sleep(1.5)
    proc.kill()
    proc.wait(10)
    stop.set()
    for thread in threads:
        thread.join(10)
    assert len(answered) > 100
    assert query(pg_url, "SELECT count(*) AS n FROM usage WHERE request_id LIKE $1",
                 prefix + "-%")[0]["n"] < len(answered)  # the rows were still in memory

    again, _ = start_gateway(tmp_path, upstreams, pg_url, yaml, name="restarted")
    try:
        deadline = time.monotonic() + 20
        while True:
            rows = query(pg_url, "SELECT request_id FROM usage WHERE request_id LIKE $1",
                         prefix + "-%")
            if len(rows) >= len(answered) or time.monotonic() > deadline:
                break
            time.sleep(0.2)
    finally:
        again.terminate()
        again.wait(20)
    stored = [row["request_id"] for row in rows]
    assert len(stored) == len(set(stored))  # none twice
    assert set(answered) <= set(stored)  # every 200 the clients got
    assert len(set(stored) - set(answered)) <= 4  # at most one in flight per client
    # the rollups hold each replayed row once: they equal a GROUP BY over the raw rows
    assert assert_rollups_match(pg_url, PriceBook.load()) == len(stored)
