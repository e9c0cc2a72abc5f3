"""Steady chat load for the fault tests: client threads, each on one gateway, cycling through
gateway keys with a pause between calls; every call is recorded with the phase the test was in
when it was sent, so a test can compare latencies and outcomes before and during a fault."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import httpx


@dataclass(frozen=True, slots=True)
class Call:
    sent: float  # epoch seconds
    phase: str
    key: str
    request_id: str
    seconds: float
    status: int | str  # the HTTP status, or the client's exception name


class Load:
    def __init__(self, urls: list[str], keys: list[str], *, clients_per_url: int,
                 pause: float, prefix: str = "load") -> None:
        self.keys, self.prefix, self.pause = keys, prefix, pause
        self.phase = "warmup"
        self._calls: list[Call] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._client, args=(url, n))
                         for url in urls for n in range(clients_per_url)]

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(30)

    def _client(self, url: str, n: int) -> None:
        with httpx.Client(base_url=url, timeout=10) as http:
            i = n
            while not self._stop.is_set():
                key = self.keys[i % len(self.keys)]
                phase, sent = self.phase, time.time()
                rid = f"{self.prefix}-{phase}-{url.rsplit(':', 1)[-1]}-{n}-{i}"
                i += 1
                started = time.perf_counter()
                status: int | str
                try:
                    status = http.post(
                        "/v1/chat/completions",
                        headers={"authorization": f"Bearer {key}", "x-request-id": rid},
                        json={"model": "deepseek-v4-flash",
                              "messages": [{"role": "user", "content": "hi"}]}).status_code
                except httpx.HTTPError as exc:
                    status = type(exc).__name__
                with self._lock:
                    self._calls.append(
                        Call(sent, phase, key, rid, time.perf_counter() - started, status))
                time.sleep(self.pause)

    def calls(self, *phases: str) -> list[Call]:
        """The calls sent in these phases (all of them if none is named)."""
        with self._lock:
            return [c for c in self._calls if not phases or c.phase in phases]
