"""The upstream transport: one keep-alive pool per provider, and the only place that knows it.

The client is gateway/http1.py, a small HTTP/1.1 client on asyncio.Protocol and httptools:
aiohttp's client cost ~90 µs of CPU a request more on this hot path (bench/RESULTS-transport.md),
and aiohttp itself is ~20x faster than httpx's default transport under concurrency (DESIGN.md).
Its failures are mapped into `UpstreamError` here, so no transport exception escapes to
handlers and failover sees one error type.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable

from gateway.errors import UpstreamError
from gateway.http1 import (
    BodyCut,
    ConnectFailed,
    Endpoint,
    HTTPClientError,
    Response,
    Timeouts,
)
from gateway.providers.base import Provider
from gateway.providers.stream import SSESplitter

# An error body worth reading is small; a provider that sends megabytes of error is broken.
_MAX_ERROR_BODY = 64 * 1024

UpstreamResponse = Response


class UpstreamClient:
    """Owns the connection pools; created and closed by the app's lifespan."""

    def __init__(self) -> None:
        self._endpoints: dict[Provider, Endpoint] | None = None
        self._ssl: ssl.SSLContext | None = None

    async def start(self) -> None:
        # No cookie jar, no proxy from the environment, no redirects: an upstream's cookies
        # (a CDN's) must not be replayed for every client, and the gateway talks to the URL
        # it was configured with.
        self._ssl = ssl.create_default_context()
        self._endpoints = {}

    async def close(self) -> None:
        if self._endpoints is not None:
            for endpoint in self._endpoints.values():
                endpoint.close()
            self._endpoints = None

    @property
    def started(self) -> bool:
        return self._endpoints is not None

    def _endpoint(self, provider: Provider) -> Endpoint:
        endpoints = self._endpoints
        if endpoints is None:
            raise RuntimeError("UpstreamClient.start() was not awaited")
        endpoint = endpoints.get(provider)
        if endpoint is None:
            t = provider.timeouts
            # `read` bounds the wait for the first byte and every gap after it; keep-alive
            # comments from the upstream reset it, so long healthy reasoning is not cut.
            endpoint = Endpoint(provider.url, dict(provider.headers),
                                Timeouts(connect=t.connect, read=t.first_byte, total=t.total),
                                self._ssl)
            endpoints[provider] = endpoint
        return endpoint

    # Each call maps failures with a plain try/except (not a context manager): this is the
    # hot path, and a generator-based context manager costs measurable time per request.

    async def send(self, provider: Provider, payload: bytes,
                   extra_headers: dict[str, str] | None = None) -> Response:
        """POST a chat request; returns the response with its body unread. `extra_headers`:
        the attempt's trace context, when tracing is on."""
        try:
            return await self._endpoint(provider).post(payload, extra_headers)
        except _TRANSPORT_ERRORS as exc:
            raise upstream_error(provider, exc) from None

    @staticmethod
    async def read(provider: Provider, response: Response) -> bytes:
        try:
            return await response.read()
        except _TRANSPORT_ERRORS as exc:
            raise upstream_error(provider, exc) from None

    @staticmethod
    async def read_error(provider: Provider, response: Response) -> bytes:
        try:
            return await response.read(_MAX_ERROR_BODY)
        except _TRANSPORT_ERRORS as exc:
            raise upstream_error(provider, exc) from None


class UpstreamEvents:
    """A streamed answer's server-sent events, with transport failures mapped: pulled a read at
    a time (`next_batch`) or pushed to a sink from the connection's callback (`push_to`)."""

    __slots__ = ("_provider", "_response", "splitter")

    def __init__(self, provider: Provider, response: Response) -> None:
        self._provider = provider
        self._response = response
        self.splitter = SSESplitter()

    async def next_batch(self) -> list[bytes] | None:
        """The events the next read(s) completed; None at the body's end."""
        splitter = self.splitter
        try:
            while data := await self._response.next_read():
                if batch := splitter.feed(data):
                    return batch
        except _TRANSPORT_ERRORS as exc:
            raise upstream_error(self._provider, exc) from None
        return splitter.close() or None

    async def push_to(self, sink: Callable[[bytes], bool]) -> None:
        """`Response.push_to`: each read goes to `sink` (which splits it with `splitter`)
        until the sink declines one, the body ends or fails; `next_batch` takes the rest."""
        await self._response.push_to(sink)


_TRANSPORT_ERRORS = (TimeoutError, HTTPClientError, ConnectionError)


def upstream_error(provider: Provider, exc: BaseException) -> UpstreamError:
    """Map the client's and asyncio's failures to `UpstreamError` (all retryable)."""
    if isinstance(exc, TimeoutError):
        message, code = f"{provider.name} did not answer in time", "upstream_timeout"
    elif isinstance(exc, ConnectFailed):
        message, code = f"cannot connect to {provider.name}", "upstream_unreachable"
    elif isinstance(exc, BodyCut):
        message, code = f"{provider.name} cut the answer short", "upstream_cut"
    else:
        message, code = f"{provider.name} closed the connection", "upstream_disconnected"
    return UpstreamError(message, provider=provider.name, upstream_status=None, code=code)
