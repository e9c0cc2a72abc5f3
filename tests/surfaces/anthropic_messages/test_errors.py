"""Gateway errors in Anthropic's shape and statuses."""

from __future__ import annotations

import orjson
import pytest

from gateway.errors import (
    AuthenticationFailed,
    GatewayError,
    InvalidRequest,
    ModelNotFound,
    NoProviderConfigured,
    NotFound,
    PermissionDenied,
    QuotaExceeded,
    RateLimited,
    UpstreamError,
)
from gateway.surfaces.anthropic_messages.errors import render_error


def _upstream(status: int | None) -> UpstreamError:
    return UpstreamError("upstream said no", provider="deepseek", upstream_status=status)


@pytest.mark.parametrize(("error", "status", "kind"), [
    (InvalidRequest("messages: bad", param="messages"), 400, "invalid_request_error"),
    (AuthenticationFailed("no key"), 401, "authentication_error"),
    (PermissionDenied("not from here"), 403, "permission_error"),
    (NotFound("no route"), 404, "not_found_error"),
    (ModelNotFound("model: gpt-9"), 404, "not_found_error"),
    (GatewayError("too big", status=413), 413, "request_too_large"),
    (RateLimited("slow"), 429, "rate_limit_error"),
    (QuotaExceeded("budget spent"), 400, "invalid_request_error"),
    (GatewayError("boom"), 500, "api_error"),
    (NoProviderConfigured("no upstream key"), 503, "api_error"),
    (_upstream(400), 400, "invalid_request_error"),
    (_upstream(422), 400, "invalid_request_error"),
    (_upstream(401), 502, "api_error"),
    (_upstream(429), 429, "rate_limit_error"),
    (_upstream(500), 502, "api_error"),
    (_upstream(503), 529, "overloaded_error"),
    (_upstream(504), 504, "api_error"),
    (_upstream(None), 502, "api_error"),
])
def test_status_and_type(error: GatewayError, status: int, kind: str) -> None:
    got_status, _, raw = render_error(error)
    assert got_status == status
    assert orjson.loads(raw) == {"type": "error",
                                 "error": {"type": kind, "message": error.message}}


def test_rate_limit_headers_are_kept() -> None:
    headers = {"retry-after": "7", "x-ratelimit-remaining-requests": "0"}
    status, got, _ = render_error(RateLimited("slow", headers=headers))
    assert (status, got) == (429, headers)
    upstream = UpstreamError("busy", provider="p", upstream_status=503, retry_after=2.5)
    assert render_error(upstream)[1] == {"retry-after": "3"}


def test_no_openai_fields_leak() -> None:
    _, _, raw = render_error(ModelNotFound("model: x", param="model"))
    error = orjson.loads(raw)["error"]
    assert set(error) == {"type", "message"}
