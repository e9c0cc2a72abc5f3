"""Errors as `{"error": "text"}` with the gateway's status and headers."""

from __future__ import annotations

import orjson

from gateway.errors import AuthenticationFailed, QuotaExceeded, RateLimited, UpstreamError
from gateway.surfaces.ollama.errors import error_line, render_error


def test_an_error_is_its_text_under_error_with_its_status() -> None:
    status, headers, body = render_error(AuthenticationFailed("Incorrect API key provided."))
    assert status == 401 and headers == {}
    assert orjson.loads(body) == {"error": "Incorrect API key provided."}


def test_limits_keep_their_429_and_headers() -> None:
    limited = RateLimited("slow down", headers={"retry-after": "3"})
    status, headers, _ = render_error(limited)
    assert status == 429 and headers == {"retry-after": "3"}
    assert render_error(QuotaExceeded("budget spent"))[0] == 429


def test_an_upstream_failure_keeps_the_gateways_status() -> None:
    error = UpstreamError("ollama: Server overloaded, please retry shortly", provider="ollama",
                          upstream_status=503)
    status, _, body = render_error(error)
    assert status == 503
    assert orjson.loads(body) == {"error": "ollama: Server overloaded, please retry shortly"}


def test_the_mid_stream_error_is_one_json_line() -> None:
    line = error_line(UpstreamError("cut", provider="deepseek", upstream_status=None))
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert orjson.loads(line) == {"error": "cut"}
