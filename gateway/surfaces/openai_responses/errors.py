"""Errors in OpenAI's shape, before a stream starts and inside one.

Before anything was sent: `{"error": {"message", "type", "param", "code"}}` with the gateway's
status (OpenAI's own table: 400, 401, 403, 404, 413, 429 (rate limits and `insufficient_quota`),
5xx), the same body as OpenAI Chat's. After a stream began, a failure is an `error` event
`{type: "error", code, message, param}` followed by `response.failed`, whose
`response.error.code` is what Codex and the SDKs read: the gateway's code when it has one,
else `rate_limit_exceeded` for a 429 and `server_error` for anything else (which Codex retries).
"""

from __future__ import annotations

from typing import Any

from gateway.errors import GatewayError
from gateway.surfaces.openai_chat.errors import error_json


def render_error(error: GatewayError) -> tuple[int, dict[str, str], bytes]:
    return error.status, dict(error.headers), error_json(error)


def failure_code(error: GatewayError) -> str:
    if error.code:
        return error.code
    return "rate_limit_exceeded" if error.status == 429 else "server_error"


def error_event_payload(error: GatewayError) -> dict[str, Any]:
    """The `error` event's fields, sequence number aside."""
    return {"type": "error", "code": failure_code(error), "message": error.message,
            "param": error.param}


def response_error(error: GatewayError) -> dict[str, str]:
    """`response.error` of a failed response."""
    return {"code": failure_code(error), "message": error.message}
