"""What a client API must provide to be served by the core: parse, render, name its paths."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Protocol

from gateway.core.answer import Answer, Chunk
from gateway.core.call import Call
from gateway.errors import GatewayError
from gateway.usage import Usage


class StreamRenderer(Protocol):
    """Per-call state that turns canonical chunks into this surface's streaming wire format."""

    # Seconds of upstream silence after which `keepalive()` is sent; None: never.
    keepalive_interval: float | None

    def chunk(self, chunk: Chunk) -> bytes:
        """Bytes for one canonical chunk (may be empty)."""
        ...

    def finish(self, usage: Usage | None) -> bytes:
        """The end of a complete stream (e.g. `[DONE]`, or `message_delta` + `message_stop`)."""
        ...

    def error(self, error: GatewayError) -> bytes:
        """The one event that ends a stream that failed after it began."""
        ...

    def keepalive(self) -> bytes:
        ...


class Surface(Protocol):
    api: str  # e.g. "openai.chat": the usage rows' and metrics' `api`
    paths: frozenset[str]  # POST paths served by the core pipeline
    # POST paths this surface answers itself, without an upstream (e.g. Anthropic's
    # count_tokens): after authentication, the body in, the JSON answer out.
    local_paths: Mapping[str, Callable[[bytes], bytes]]
    stream_content_type: bytes

    def parse(self, raw: bytes) -> Call:
        """The request body as a canonical call; raises InvalidRequest, ModelNotFound, ..."""
        ...

    def render_answer(self, call: Call, answer: Answer) -> bytes:
        ...

    def stream_renderer(self, call: Call) -> StreamRenderer:
        ...

    def render_error(self, error: GatewayError) -> tuple[int, dict[str, str], bytes]:
        """(HTTP status, extra headers, body) for an error on this surface."""
        ...
