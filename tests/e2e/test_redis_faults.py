"""Redis killed, brought back empty, then frozen (SIGSTOP) for 20 s, under load through two
real `gateway serve` processes sharing it (a redis-server of the test's own), with rpm-limited
keys: no failed request (a 429 over the limit is the limit working), no request slower than
50 ms more than the slowest before, at most 1.2x a key's rpm admitted across both processes in
any minute, one warning per outage per process, and a key revoked through one process refused
by the other within 1.5 s while the key-change channel is down."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import httpx

from tests.db import pg
from tests.e2e.conftest import Upstreams
from tests.e2e.load import Call, Load
from tests.e2e.process import start_gateway
from tests.limits.test_redis_faults import OwnRedis, own_redis

pg_database = pg.pg_database
pg_url = pg.pg_url
__all__ = ["own_redis"]

RPM = 120
KEYS = 3
CLIENTS_PER_GATEWAY = 2
PAUSE = 0.02


def body() -> dict[str, object]:
    return {"model": "deepseek-v4-flash", "messages": [{"role": "user", "content": "hi"}]}


def chat(url: str, key: str) -> int:
    return httpx.post(url + "/v1/chat/completions", json=body(), timeout=10,
                      headers={"authorization": f"Bearer {key}"}).status_code


def test_two_gateways_ride_out_a_dead_then_frozen_redis(
    tmp_path: Path, upstreams: Upstreams, pg_url: str, own_redis: OwnRedis
) -> None:
    yaml = f"redis_url: {own_redis.url}\nmetering: {{spool_path: {tmp_path / 'spool-%s'}}}\n"
    first, url_a = start_gateway(tmp_path, upstreams, pg_url, yaml % "a", name="a")
    second, url_b = start_gateway(tmp_path, upstreams, pg_url, yaml % "b", name="b")
    try:
        with httpx.Client(base_url=url_a, timeout=10) as admin:  # loopback: admin
            keys = [admin.post("/admin/keys", json={"name": f"rl-{n}", "rpm": RPM}).json()["key"]
                    for n in range(KEYS)]
            victim = admin.post("/admin/keys", json={"name": "victim"}).json()
        # The control: calls that never touch Redis (loopback, no key), on the same gateways
        # at the same time, to tell the machine's own stalls (a loaded 2-core box) from
        # waits on Redis.
        with Load([url_a, url_b], keys, clients_per_url=CLIENTS_PER_GATEWAY,
                  pause=PAUSE) as load, \
                Load([url_a, url_b], [""], clients_per_url=1, pause=0.05) as control:
            time.sleep(1.0)
            load.phase = control.phase = "before"
            time.sleep(5.0)
            load.phase = control.phase = "faults"
            faults_at = time.time()
            own_redis.stop()  # killed
            time.sleep(4.0)
            own_redis.start()  # back, empty
            time.sleep(3.0)
            own_redis.freeze()
            try:
                time.sleep(3.0)
                assert chat(url_b, victim["key"]) == 200  # cached in b
                revoked = admin_revoke(url_a, victim["id"])
                refused_after = None
                while time.monotonic() - revoked < 5:
                    if chat(url_b, victim["key"]) == 401:
                        refused_after = time.monotonic() - revoked
                        break
                    time.sleep(0.02)
                time.sleep(max(0.0, 17.0 - (time.monotonic() - revoked)))
            finally:
                own_redis.thaw()
            time.sleep(1.0)
        calls = load.calls()
        failed = Counter(str(c.status) for c in calls if c.status not in (200, 429))
        before = [c.seconds for c in load.calls("before")]
        during = [c.seconds for c in load.calls("faults")]
        admitted = Counter((c.key, int(c.sent // 60)) for c in calls if c.status == 200)
        print(f"\n{len(calls)} requests ({sum(admitted.values())} admitted); slowest before "
              f"{max(before) * 1000:.0f} ms, during the faults {max(during) * 1000:.0f} ms "
              f"(p99 {sorted(during)[int(len(during) * 0.99)] * 1000:.0f} ms); most admitted "
              f"for a key in a minute {max(admitted.values())} (rpm {RPM}); revoked key "
              f"refused by the other process after {refused_after} s; failed {dict(failed)}")
        slowest = sorted(((c.seconds, c.sent - faults_at, c.status) for c in
                          load.calls("faults")), key=lambda t: t[0], reverse=True)[:8]
        print("slowest during the faults (s, at s after the kill, status):",
              [(round(a, 3), round(b, 1), c) for a, b, c in slowest])
        # The slowest call before the faults that the machine's own stalls do not explain.
        controls = control.calls()
        normal = max(c.seconds for c in control.calls("before")) + 0.05
        bound = max(c.seconds for c in load.calls("before")
                    if not stalled_too(c, controls, normal)) + 0.05
        slow = [c for c in load.calls("faults") if c.seconds > bound]
        unexplained = [c for c in slow if not stalled_too(c, controls, normal)]
        print(f"{len(slow)} slower than the slowest before + 50 ms ({bound * 1000:.0f} ms), "
              f"{len(unexplained)} of them while the control calls (no Redis) were fast")
        assert len(during) > 500
        assert failed == Counter()
        # A hang on Redis holds every call in flight at that moment (4 clients: the code
        # before issue 13 left 4-6 calls at 260-297 ms); one lone slow call that the control
        # calls did not see was seen once in a full suite on a quiet box (381 ms, a 429, 3.3 s
        # after the kill; cause not found) and is not what this test is after.
        assert len(unexplained) <= 1, (unexplained, [
            c for c in controls if any(overlap(c, u) for u in unexplained)])
        assert max(admitted.values()) <= 1.2 * RPM
        assert refused_after is not None and refused_after <= 1.5
        for name in ("a", "b"):
            log = (tmp_path / f"{name}.log").read_text()
            assert 2 <= log.count("Redis unavailable") <= 4, log[-2000:]
    finally:
        for proc in (first, second):
            proc.terminate()
            proc.wait(30)


def stalled_too(call: Call, control: list[Call], normal: float) -> bool:
    """Was a control call in flight at the same time nearly as slow (within 50 ms), or slower
    than control calls ever were before the faults (`normal`)? Then the whole gateway or
    machine stalled, not this call's Redis. (A control call that started halfway through a
    stall is slowed by only half of it: CI once saw two calls of 0.44 s at one moment, 0.3 s
    after the kill, that the first test alone did not explain.)"""
    return any(overlap(c, call) and (c.seconds >= call.seconds - 0.05 or c.seconds > normal)
               for c in control)


def overlap(a: Call, b: Call) -> bool:
    return a.sent < b.sent + b.seconds and a.sent + a.seconds > b.sent


def admin_revoke(url: str, key_id: str) -> float:
    """Revoke through `url`; the monotonic time the revocation was committed."""
    response = httpx.delete(f"{url}/admin/keys/{key_id}", timeout=10)
    assert response.status_code == 200, response.text
    return time.monotonic()
