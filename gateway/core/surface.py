"""What a client API must provide to be served by the core: parse, render, name its paths."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Protocol, runtime_checkable

from gateway.core.answer import Answer, Chunk
from gateway.core.call import Call
from gateway.errors import GatewayError
from gateway.keys.principal import Principal
from gateway.usage import Usage


class StreamRenderer(Protocol):
    """Per-call state that turns canonical chunks into this surface's streaming wire format."""

    # Seconds of upstream silence after which `keepalive()` is sent; None: never.
    keepalive_interval: float | None
    # True when an event the decoder's fast path read (a `TextRun` of one) goes to this client
    # as the upstream sent it (`data: <event>\n\n`): the relay then writes such a read as it
    # came, without splitting, decoding or rendering it.
    verbatim: bool

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


@runtime_checkable
class PreparesCalls(Protocol):
    """Optional for a surface: one whose calls depend on what it keeps per caller (the
    Responses API's `previous_response_id` continues a conversation stored under the key that
    made it) completes each admitted call here, knowing who is calling and free to await its
    own store. `parse` stays pure and synchronous; stateless surfaces do not implement this."""

    async def prepare(self, call: Call, principal: Principal) -> None:
        """Complete `call` for `principal` before it is dispatched; raises like `parse`."""
        ...


@runtime_checkable
class AnswersOtherMethods(Protocol):
    """Optional for a surface: requests of methods other than POST that it answers itself,
    without an upstream (Ollama's `GET /api/tags`, `DELETE /api/delete`), by exact (METHOD,
    path). They are authenticated, size-limited and rendered like `local_paths`: the answer
    is the JSON body of a 200, an error is raised and rendered in the surface's shape."""

    local_routes: Mapping[tuple[str, str], Callable[[bytes], bytes]]
