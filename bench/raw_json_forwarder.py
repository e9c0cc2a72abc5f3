"""The Python floor for a translating relay: the raw forwarder, plus one orjson parse and
re-serialisation per SSE event, the least any gateway that reads its stream must do.

Everything else is bench/raw_forwarder.py's (copied rather than imported so each floor stays a
self-contained file anyone can read in one go). Compare the gateway with both: the distance to
raw_forwarder is the whole cost of understanding the stream; the distance to this one is what
the gateway spends beyond the unavoidable JSON work.

Original description of the raw forwarder follows.

The Python floor: the least an ASGI app can do to forward a completion with aiohttp.

No framework, no parsing, no auth; it POSTs the body to UPSTREAM_URL with one shared keep-alive
session and relays status, content-type and body (chunk by chunk for SSE). Whatever the gateway
spends above this is its own overhead. Run by bench/run.py as:
    uvicorn --factory bench.raw_json_forwarder:create_app --loop uvloop --http httptools
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import orjson

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
                pending = b""
                async for chunk in resp.content.iter_any():
                    pending += chunk
                    *events, pending = pending.split(b"\n\n")
                    body = b"".join(_reencode(event) for event in events if event)
                    await send({"type": "http.response.body", "body": body, "more_body": True})
                await send({"type": "http.response.body", "body": b""})
            else:
                data = await resp.read()
                length = str(len(data)).encode()
                await send(
                    {**start, "headers": [(b"content-type", ctype), (b"content-length", length)]}
                )
                await send({"type": "http.response.body", "body": data})


def create_app() -> RawForwarder:
    """Factory for `uvicorn --factory`, so importing this module builds nothing."""
    return RawForwarder(os.environ["UPSTREAM_URL"])


def _reencode(event: bytes) -> bytes:
    """One SSE event in, the same event out, through orjson for `data: {...}` payloads."""
    if event.startswith(b"data: {"):
        return b"data: " + orjson.dumps(orjson.loads(event[6:])) + b"\n\n"
    return event + b"\n\n"
