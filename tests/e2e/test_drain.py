"""SIGTERM on a real `gateway serve` process: the graceful drain (gateway/core/drain.py).

30 streams outlive the drain time and must each end with the surface's error event; calls
still waiting on a hung upstream get a proper 503; a stream that finishes inside the drain
finishes normally; /readyz is 503 and new requests get 503 + `Connection: close` +
`Retry-After` during the drain; every call is exactly one usage row in Postgres.
"""

from __future__ import annotations

import secrets
import signal
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from tests.db import pg
from tests.db.pg import query
from tests.e2e.conftest import Upstreams
from tests.e2e.process import start_gateway
from tests.upstream.common import Faults

pg_database = pg.pg_database
pg_url = pg.pg_url

DRAIN = 2.0
CUT_GRACE = 3.0


def body(stream: bool) -> dict[str, Any]:
    return {"model": "deepseek-v4-flash", "stream": stream,
            "messages": [{"role": "user", "content": "tell me a long story"}]}


def test_sigterm_drains_then_cuts_streams_with_an_error_event(
    tmp_path: Path, upstreams: Upstreams, pg_url: str
) -> None:
    upstreams.deepseek.faults = Faults(chunk_delay_ms=4000)  # outlives the drain
    upstreams.ollama.faults = Faults(chunk_delay_ms=60)  # finishes inside it
    upstreams.openrouter.faults = Faults(hang_seconds=60)  # never answers in time
    proc, url = start_gateway(
        tmp_path, upstreams, pg_url,
        f"shutdown: {{drain_seconds: {DRAIN}, cut_grace: {CUT_GRACE}, retry_after: 7}}\n"
        f"metering: {{flush_interval: 0.05, spool_path: {tmp_path / 'spool'}}}\n")
    prefix = secrets.token_hex(4)
    first_bytes = threading.Semaphore(0)
    results: dict[str, Any] = {}

    def stream(rid: str, provider: str) -> None:
        headers = {"x-request-id": rid, "x-gateway-provider": provider}
        lines: list[str] = []
        try:
            with httpx.stream("POST", url + "/v1/chat/completions", json=body(True),
                              headers=headers, timeout=60) as response:
                results[rid + ":status"] = response.status_code
                for line in response.iter_lines():
                    if line and not lines:
                        first_bytes.release()
                    if line:
                        lines.append(line)
        except httpx.HTTPError as exc:
            lines.append(f"transport error: {exc!r}")
        results[rid] = lines

    def whole(rid: str) -> None:
        try:
            response = httpx.post(url + "/v1/chat/completions", json=body(False), timeout=60,
                                  headers={"x-request-id": rid, "x-gateway-provider": "openrouter"})
            results[rid] = response
        except httpx.HTTPError as exc:
            results[rid] = exc

    long_ids = [f"{prefix}-long-{i}" for i in range(30)]
    waiting_ids = [f"{prefix}-wait-{i}" for i in range(3)]
    threads = [threading.Thread(target=stream, args=(rid, "deepseek")) for rid in long_ids]
    threads += [threading.Thread(target=whole, args=(rid,)) for rid in waiting_ids]
    for thread in threads:
        thread.start()
    for _ in long_ids:
        assert first_bytes.acquire(timeout=20), "streams did not start"
    time.sleep(0.3)  # the waiting calls are at the hung upstream by now
    short_id = f"{prefix}-short"
    short = threading.Thread(target=stream, args=(short_id, "ollama"))
    short.start()
    assert first_bytes.acquire(timeout=10)

    signalled = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    time.sleep(0.3)
    ready = httpx.get(url + "/readyz", timeout=5)
    assert ready.status_code == 503 and ready.json()["checks"]["not_draining"] is False
    refused_id = f"{prefix}-new"
    refused = httpx.post(url + "/v1/chat/completions", json=body(False), timeout=5,
                         headers={"x-request-id": refused_id})
    assert refused.status_code == 503
    assert refused.headers["connection"] == "close"
    assert refused.headers["retry-after"] == "7"
    assert refused.json()["error"]["code"] == "shutting_down"
    assert httpx.get(url + "/v1/models", timeout=5).status_code == 503

    for thread in [*threads, short]:
        thread.join(30)
    assert proc.wait(20) is not None
    elapsed = time.monotonic() - signalled
    assert DRAIN <= elapsed < DRAIN + CUT_GRACE + 8, elapsed

    assert results[short_id][-1] == "data: [DONE]", results[short_id]  # finished in time
    for rid in long_ids:
        lines = results[rid]
        assert results[rid + ":status"] == 200
        assert len(lines) >= 2, lines
        assert lines[-1].startswith("data: {\"error\""), lines  # the error event, no [DONE]
        assert "shutting_down" in lines[-1]
        assert "data: [DONE]" not in lines
    for rid in waiting_ids:
        response = results[rid]
        assert isinstance(response, httpx.Response), response
        assert response.status_code == 503, response.text
        assert response.json()["error"]["code"] == "shutting_down"

    rows = query(pg_url, "SELECT request_id, status, error_type FROM usage "
                         "WHERE request_id LIKE $1", prefix + "-%")
    by_id: dict[str, list[tuple[str, str | None]]] = {}
    for row in rows:
        by_id.setdefault(row["request_id"], []).append((row["status"], row["error_type"]))
    expected = {rid: [("shutdown", "shutting_down")] for rid in long_ids + waiting_ids}
    expected[short_id] = [("ok", None)]
    expected[refused_id] = [("refused", "shutting_down")]
    assert by_id == expected


def test_sigint_drains_like_sigterm_and_local_answers_are_refused_too(
    tmp_path: Path, upstreams: Upstreams, pg_url: str
) -> None:
    """Ctrl-C on `gateway serve` (SIGINT) drains as SIGTERM does, and during the drain the
    requests the gateway answers itself (count_tokens, /api/show, /v1/models) get the same
    refusal, Retry-After and `Connection: close` as calls do."""
    upstreams.deepseek.faults = Faults(chunk_delay_ms=300)  # ~2 s: finishes inside the drain
    proc, url = start_gateway(
        tmp_path, upstreams, pg_url,
        "shutdown: {drain_seconds: 10, cut_grace: 2, retry_after: 7}\n"
        f"metering: {{flush_interval: 0.05, spool_path: {tmp_path / 'spool'}}}\n")
    lines: list[str] = []
    started = threading.Event()

    def stream() -> None:
        with httpx.stream("POST", url + "/v1/chat/completions", json=body(True),
                          timeout=30) as response:
            for line in response.iter_lines():
                started.set()
                if line:
                    lines.append(line)

    thread = threading.Thread(target=stream)
    thread.start()
    assert started.wait(20)
    proc.send_signal(signal.SIGINT)
    time.sleep(0.5)
    assert proc.poll() is None  # still draining
    assert httpx.get(url + "/readyz", timeout=5).status_code == 503
    local = [
        httpx.post(url + "/v1/messages/count_tokens", timeout=5, json={
            "model": "claude-sonnet-4-5", "messages": [{"role": "user", "content": "hi"}]}),
        httpx.post(url + "/api/show", timeout=5, json={"model": "deepseek-v4-flash"}),
        httpx.get(url + "/v1/models", timeout=5),
    ]
    # (Anthropic's API says "overloaded" with a 529; the others 503.)
    assert [r.status_code for r in local] == [529, 503, 503], [r.text for r in local]
    for response in local:
        assert response.headers["retry-after"] == "7"
        assert response.headers["connection"] == "close"
    thread.join(30)
    assert lines[-1] == "data: [DONE]", lines[-3:]  # the call in flight finished
    assert proc.wait(20) is not None
