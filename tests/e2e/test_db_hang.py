"""A Postgres that hangs (rather than refusing) under load, through a real `gateway serve`.

The gateway reaches Postgres through a TCP relay (tests/e2e/relay.py) that the test freezes
with SIGSTOP for 30 s: open connections stay open and silent, new ones are accepted and hear
nothing. Keys used before the outage must keep working with no failed request and a p99
within 100 ms of before (their cache entries fall due every second without Redis, so each
re-lookup meets the hung database), and every call answered during the outage must reach the
usage table once the database is back.
"""

from __future__ import annotations

import secrets
import statistics
import time
from pathlib import Path

import httpx
from sqlalchemy.engine import make_url

from tests.db import pg
from tests.db.pg import query
from tests.e2e.conftest import Upstreams
from tests.e2e.load import Load
from tests.e2e.process import start_gateway
from tests.e2e.relay import Relay

pg_database = pg.pg_database
pg_url = pg.pg_url

KEYS = 6
CLIENTS = 4
PAUSE = 0.04  # per client between requests: ~80 requests a second in all
WARMUP = 2.0
BEFORE = 6.0
OUTAGE = 30.0


def p99(seconds: list[float]) -> float:
    return statistics.quantiles(seconds, n=100)[98]


def test_a_hung_postgres_fails_no_request_and_loses_no_row(
    tmp_path: Path, upstreams: Upstreams, pg_url: str
) -> None:
    real = make_url(pg_url)
    relay = Relay(real.port or 5432, real.host or "127.0.0.1").start()
    through_relay = real.set(port=relay.port).render_as_string(hide_password=False)
    yaml = (f"metering: {{flush_interval: 0.1, retry_max: 1, insert_timeout: 2, "
            f"spool_path: {tmp_path / 'spool'}}}\n")
    proc, url = start_gateway(tmp_path, upstreams, through_relay, yaml)
    prefix = secrets.token_hex(4)
    try:
        with httpx.Client(base_url=url, timeout=10) as http:  # loopback: admin
            keys = [http.post("/admin/keys", json={"name": f"hang-{n}"}).json()["key"]
                    for n in range(KEYS)]
        with Load([url], keys, clients_per_url=CLIENTS, pause=PAUSE, prefix=prefix) as load:
            time.sleep(WARMUP)
            load.phase = "before"
            time.sleep(BEFORE)
            load.phase = "outage"
            relay.freeze()
            try:
                time.sleep(OUTAGE)
            finally:
                relay.thaw()
            load.phase = "after"
            time.sleep(1.0)
        before, outage = load.calls("before"), load.calls("outage")
        failed = [(c.request_id, c.status) for c in load.calls() if c.status != 200]
        p99_before = p99([c.seconds for c in before])
        p99_outage = p99([c.seconds for c in outage])
        print(f"\nrequests before {len(before)}, during the outage {len(outage)}; p99 before "
              f"{p99_before * 1000:.1f} ms, during {p99_outage * 1000:.1f} ms, slowest during "
              f"{max(c.seconds for c in outage) * 1000:.0f} ms; failed {len(failed)}")
        assert len(outage) > 10 * OUTAGE  # the load went on throughout
        assert failed == []
        assert p99_outage <= p99_before + 0.1

        answered = {c.request_id for c in outage if c.status == 200}
        deadline = time.monotonic() + 20
        while True:
            stored = {row["request_id"] for row in query(
                pg_url, "SELECT request_id FROM usage WHERE request_id LIKE $1",
                f"{prefix}-outage-%")}
            if answered <= stored or time.monotonic() > deadline:
                break
            time.sleep(0.25)
        assert answered - stored == set()  # every call answered during the outage is metered
    finally:
        proc.terminate()
        proc.wait(30)
        relay.stop()
