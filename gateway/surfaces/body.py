"""The request body every surface starts from: one JSON object, parsed once with orjson."""

from __future__ import annotations

from typing import Any

import orjson

from gateway.errors import InvalidRequest


def json_object(raw: bytes) -> dict[str, Any]:
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(f"The request body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise InvalidRequest("The request body must be a JSON object.")
    return body
