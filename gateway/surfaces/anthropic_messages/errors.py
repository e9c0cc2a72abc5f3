"""Errors in Anthropic's shape: `{"type": "error", "error": {"type", "message"}}`.

Anthropic's SDKs pick their exception class and their retry decision from the status and
`error.type`, so both follow Anthropic's table rather than the gateway's OpenAI-flavoured one:

    400 invalid_request_error  (also 422 and other unlisted 4xx, sent as 400)
    401 authentication_error   403 permission_error   404 not_found_error
    413 request_too_large      429 rate_limit_error (rate limits; headers kept)
    500 api_error              502 / 504 api_error (status kept: the SDKs retry any 5xx)
    529 overloaded_error       every upstream out of capacity (an upstream 503 or a gateway
                               refusal for load), which SDKs retry with backoff
    503 api_error              NoProviderConfigured: no upstream has a key, retrying cannot help

QuotaExceeded (a key's or team's budget is spent) is a 400 invalid_request_error, as Anthropic
answers a workspace whose spend limit is reached: a 429 would be retried by the SDKs and by
Claude Code (for minutes), and waiting does not refill a budget. `param` has no place in this
shape; the gateway's messages name the field themselves. The error's headers (retry-after,
x-ratelimit-*) are kept.
"""

from __future__ import annotations

import orjson

from gateway.errors import GatewayError, NoProviderConfigured, QuotaExceeded

_TYPE_FOR_STATUS = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    529: "overloaded_error",
}
OVERLOADED = 529


def status_and_type(error: GatewayError) -> tuple[int, str]:
    """The HTTP status and `error.type` Anthropic would use for this error."""
    if isinstance(error, QuotaExceeded):
        return 400, "invalid_request_error"
    status = error.status
    if status == 503 and not isinstance(error, NoProviderConfigured):
        status = OVERLOADED
    elif 400 <= status < 500 and status not in _TYPE_FOR_STATUS:
        status = 400
    return status, _TYPE_FOR_STATUS.get(status, "api_error")


def error_body(error: GatewayError) -> bytes:
    _, kind = status_and_type(error)
    return orjson.dumps({"type": "error", "error": {"type": kind, "message": error.message}})


def render_error(error: GatewayError) -> tuple[int, dict[str, str], bytes]:
    status, kind = status_and_type(error)
    body = orjson.dumps({"type": "error", "error": {"type": kind, "message": error.message}})
    return status, dict(error.headers), body


def error_event(error: GatewayError) -> bytes:
    """The `event: error` that ends a stream which failed after it began."""
    return b"event: error\ndata: " + error_body(error) + b"\n\n"
