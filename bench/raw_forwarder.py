"""The Python floor: the least an ASGI app can do to forward a completion with aiohttp.

No framework, no parsing, no auth; it POSTs the body to UPSTREAM_URL with one shared keep-alive
session and relays status, content-type and body (chunk by chunk for SSE). Whatever the gateway
spends above this is its own overhead. Run by bench/run.py as:
    uvicorn --factory bench.raw_forwarder:create_app --loop uvloop --http httptools
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


class RawForwarder:
    """ASGI app; the session is made in lifespan startup so it binds to uvicorn's loop."""

    def __init__(self, upstream_url: str) -> None:
        self.upstream_url = upstream_url
        self.session: aiohttp.ClientSession | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        elif scope["type"] == "http":
            await self._forward(receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                connector = aiohttp.TCPConnector(limit=0, keepalive_timeout=300)
                self.session = aiohttp.ClientSession(connector=connector)
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self.session is not None:
                    await self.session.close()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _forward(self, receive: Receive, send: Send) -> None:
        assert self.session is not None, "lifespan startup did not run"
        body, more = b"", True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        headers = {"Content-Type": "application/json", "Authorization": "Bearer sk-bench"}
        async with self.session.post(self.upstream_url, data=body, headers=headers) as resp:
            ctype = resp.headers.get("Content-Type", "application/json").encode()
            start = {"type": "http.response.start", "status": resp.status}
            if ctype.startswith(b"text/event-stream"):
                await send({**start, "headers": [(b"content-type", ctype)]})
                await self._relay_stream(resp, send)
                await send({"type": "http.response.body", "body": b""})
            else:
                data = await resp.read()
                length = str(len(data)).encode()
                await send(
                    {**start, "headers": [(b"content-type", ctype), (b"content-length", length)]}
                )
                await send({"type": "http.response.body", "body": data})


    async def _relay_stream(self, resp: aiohttp.ClientResponse, send: Send) -> None:
        """Each chunk as it arrives, untouched."""
        async for chunk in resp.content.iter_any():
            await send({"type": "http.response.body", "body": chunk, "more_body": True})


def create_app() -> RawForwarder:
    """Factory for `uvicorn --factory`, so importing this module builds nothing."""
    return RawForwarder(os.environ["UPSTREAM_URL"])
