"""Idle sockets cannot starve real clients: connections that never finish their headers are
closed after `connections.header_timeout`, and beyond `connections.max_connections` new ones
get a 503 (gateway/serving.py); both are logged."""

from __future__ import annotations

import logging
import resource
import socket
import statistics
import time

import httpx
import pytest

from tests.e2e.conftest import GatewayFactory

BODY = {"model": "deepseek-v4-flash", "messages": [{"role": "user", "content": "hi"}]}


def idle_sockets(port: int, count: int) -> list[socket.socket]:
    out = []
    for _ in range(count):
        sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\n")  # never finished
        out.append(sock)
    return out


def closed_by_server(sock: socket.socket) -> bool:
    sock.settimeout(0.01)
    try:
        return sock.recv(1024) == b""
    except TimeoutError:
        return False
    except OSError:
        return True


def test_idle_headerless_connections_are_closed_and_real_clients_stay_fast(
    make_gateway: GatewayFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="gateway")
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    count = max(100, min(2000, (soft - 300) // 2))  # each socket is two fds in this process
    gateway = make_gateway(["deepseek"], yaml="connections: {header_timeout: 1.5}\n")
    port = gateway.server.port
    idle = idle_sockets(port, count)
    latencies = []
    with httpx.Client(base_url=gateway.url, timeout=5) as http:
        for _ in range(200):
            began = time.perf_counter()
            assert http.post("/v1/chat/completions", json=BODY).status_code == 200
            latencies.append(time.perf_counter() - began)
    p99 = statistics.quantiles(latencies, n=100)[98]
    assert p99 < 0.1, p99
    time.sleep(2.0)
    assert all(closed_by_server(s) for s in idle)
    for sock in idle:
        sock.close()
    assert any("not sending headers" in r.getMessage() for r in caplog.records)


def test_connections_over_the_limit_get_a_503(
    make_gateway: GatewayFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="gateway")
    gateway = make_gateway(["deepseek"],
                           yaml="connections: {header_timeout: 30, max_connections: 20}\n")
    idle = idle_sockets(gateway.server.port, 20)
    time.sleep(0.2)
    response = httpx.post(gateway.url + "/v1/chat/completions", json=BODY, timeout=5)
    assert response.status_code == 503
    for sock in idle:
        sock.close()
    time.sleep(0.2)
    assert httpx.post(gateway.url + "/v1/chat/completions", json=BODY,
                      timeout=5).status_code == 200
    assert any("refused over the limit" in r.getMessage() for r in caplog.records)
