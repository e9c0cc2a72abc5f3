"""The Python floor for a relay that reads its stream: bench/raw_forwarder.py, plus one orjson
parse and re-serialisation per SSE event, the least any gateway that translates dialects and
meters usage must do per event.

Compare the gateway with both floors: the distance to the raw forwarder is the whole cost of
understanding the stream; the distance to this one is what the gateway spends beyond the
unavoidable JSON work. Non-streamed answers are relayed exactly as by the raw forwarder.
Run by bench/run.py as:
    uvicorn --factory bench.raw_json_forwarder:create_app --loop uvloop --http httptools
"""

from __future__ import annotations

import os

import aiohttp
import orjson

from bench.raw_forwarder import RawForwarder, Send


class JsonRelay(RawForwarder):
    async def _relay_stream(self, resp: aiohttp.ClientResponse, send: Send) -> None:
        pending = b""
        async for chunk in resp.content.iter_any():
            pending += chunk
            *events, pending = pending.split(b"\n\n")
            body = b"".join(_reencode(event) for event in events if event)
            await send({"type": "http.response.body", "body": body, "more_body": True})


def _reencode(event: bytes) -> bytes:
    """One SSE event in, the same event out, through orjson for `data: {...}` payloads."""
    if event.startswith(b"data: {"):
        return b"data: " + orjson.dumps(orjson.loads(event[6:])) + b"\n\n"
    return event + b"\n\n"


def create_app() -> JsonRelay:
    """Factory for `uvicorn --factory`, so importing this module builds nothing."""
    return JsonRelay(os.environ["UPSTREAM_URL"])
