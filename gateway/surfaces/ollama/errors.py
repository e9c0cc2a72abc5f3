"""Errors in Ollama's shape: `{"error": "text"}`, with the gateway's status and headers.

Ollama's clients (the python and JS libraries, Open WebUI, editor plugins) read the status and
show the text; none retries on its own, so statuses stay the gateway's own (429 for a limit or
a spent budget, as Ollama Cloud answers its usage limits; 503 when no upstream can serve). A
failure after a stream began is one last NDJSON line holding only `error`, as Ollama sends it.
"""

from __future__ import annotations

import orjson

from gateway.errors import GatewayError


def error_body(error: GatewayError) -> bytes:
    return orjson.dumps({"error": error.message})


def render_error(error: GatewayError) -> tuple[int, dict[str, str], bytes]:
    return error.status, dict(error.headers), error_body(error)


def error_line(error: GatewayError) -> bytes:
    """The line that ends a stream which failed after it began."""
    return error_body(error) + b"\n"
