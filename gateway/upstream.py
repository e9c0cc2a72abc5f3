"""The upstream transport: one pooled aiohttp session, and the only place that knows aiohttp.

aiohttp's client is the hot path because it is ~20x faster than httpx's default transport under
concurrency on this hardware (DESIGN.md). Its exceptions are mapped into `UpstreamError` here,
so no library exception escapes to handlers and failover sees one error type.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
from aiohttp.typedefs import LooseHeaders
from multidict import CIMultiDict

from gateway.errors import UpstreamError
from gateway.providers.base import Provider

# An error body worth reading is small; a provider that sends megabytes of error is broken.
_MAX_ERROR_BODY = 64 * 1024


class UpstreamClient:
    """Owns the connection pool; created and closed by the app's lifespan."""

    def __init__(self) -> None:
        self._session: aiohttp.ClientSession | None = None
        self._timeouts: dict[str, aiohttp.ClientTimeout] = {}

    async def start(self) -> None:
        connector = aiohttp.TCPConnector(limit=0, ttl_dns_cache=300, keepalive_timeout=60)
        # No skip_auto_headers: each provider's prebuilt headers carry our User-Agent, and a
        # skip list makes aiohttp copy and extend every request's headers. No cookie jar: an
        # upstream's cookies (a CDN's) must not be kept and replayed for every client.
        self._session = aiohttp.ClientSession(
            connector=connector, auto_decompress=True, cookie_jar=aiohttp.DummyCookieJar()
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    @property
    def started(self) -> bool:
        return self._session is not None

    def _timeout(self, provider: Provider) -> aiohttp.ClientTimeout:
        timeout = self._timeouts.get(provider.name)
        if timeout is None:
            t = provider.timeouts
            # sock_read bounds the wait for the first byte and every gap after it; keep-alive
            # comments from the upstream reset it, so long healthy reasoning is not cut.
            timeout = aiohttp.ClientTimeout(
                total=t.total, sock_connect=t.connect, sock_read=t.first_byte
            )
            self._timeouts[provider.name] = timeout
        return timeout

    # Each call maps failures with a plain try/except (not a context manager): this is the
    # hot path, and a generator-based context manager costs measurable time per request.

    async def send(self, provider: Provider, payload: bytes,
                   extra_headers: dict[str, str] | None = None) -> aiohttp.ClientResponse:
        """POST a chat request; returns the response with its body unread. `extra_headers`:
        the attempt's trace context, when tracing is on."""
        if self._session is None:
            raise RuntimeError("UpstreamClient.start() was not awaited")
        headers: LooseHeaders = provider.headers
        if extra_headers is not None:
            headers = CIMultiDict(provider.headers)
            headers.update(extra_headers)
        try:
            return await self._session.post(
                provider.request_url, data=payload, headers=headers,
                timeout=self._timeout(provider),
            )
        except _TRANSPORT_ERRORS as exc:
            raise upstream_error(provider, exc) from None

    @staticmethod
    async def read(provider: Provider, response: aiohttp.ClientResponse) -> bytes:
        try:
            return await response.read()
        except _TRANSPORT_ERRORS as exc:
            raise upstream_error(provider, exc) from None

    @staticmethod
    async def read_error(provider: Provider, response: aiohttp.ClientResponse) -> bytes:
        try:
            return await response.content.read(_MAX_ERROR_BODY)
        except _TRANSPORT_ERRORS as exc:
            raise upstream_error(provider, exc) from None

    @staticmethod
    async def chunks(
        provider: Provider, response: aiohttp.ClientResponse
    ) -> AsyncIterator[bytes]:
        """The body as it arrives, with transport failures mapped."""
        try:
            async for chunk in response.content.iter_any():
                yield chunk
        except _TRANSPORT_ERRORS as exc:
            raise upstream_error(provider, exc) from None


_TRANSPORT_ERRORS = (TimeoutError, aiohttp.ClientError, ConnectionError)


def upstream_error(provider: Provider, exc: BaseException) -> UpstreamError:
    """Map aiohttp's and asyncio's failures to `UpstreamError` (all retryable)."""
    if isinstance(exc, TimeoutError):
        message, code = f"{provider.name} did not answer in time", "upstream_timeout"
    elif isinstance(exc, aiohttp.ClientConnectorError):
        message, code = f"cannot connect to {provider.name}", "upstream_unreachable"
    elif isinstance(exc, aiohttp.ClientPayloadError):
        message, code = f"{provider.name} cut the answer short", "upstream_cut"
    else:
        message, code = f"{provider.name} closed the connection", "upstream_disconnected"
    return UpstreamError(message, provider=provider.name, upstream_status=None, code=code)
