"""Errors in OpenAI's shape: `{"error": {"message", "type", "param", "code"}}`.

Also the shape of the admin API's and the usage page's errors."""

from __future__ import annotations

from typing import Any

import orjson

from gateway.errors import GatewayError


def error_object(error: GatewayError) -> dict[str, Any]:
    return {
        "error": {
            "message": error.message,
            "type": error.error_type,
            "param": error.param,
            "code": error.code,
        }
    }


def error_json(error: GatewayError) -> bytes:
    return orjson.dumps(error_object(error))


def render_error(error: GatewayError) -> tuple[int, dict[str, str], bytes]:
    return error.status, error.headers, error_json(error)


def error_event(error: GatewayError) -> bytes:
    """The one event that ends a stream that failed after it began (OpenAI's convention)."""
    return b"data: " + error_json(error) + b"\n\n"
