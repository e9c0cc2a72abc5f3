"""The response cycle that writes a head with its body (gateway/serving.py): the same bytes as
uvicorn's own cycle, in fewer writes, and the same refusals of bad headers."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from uvicorn.protocols.http.flow_control import FlowControl
from uvicorn.protocols.http.httptools_impl import RequestResponseCycle

from gateway.serving import HeadWithBody

Message = dict[str, Any]


class Transport:
    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.writes.append(data)

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


def _cycle(kind: type[RequestResponseCycle], transport: Transport,
           keep_alive: bool = True) -> RequestResponseCycle:
    scope: Any = {"type": "http", "method": "POST", "path": "/", "headers": []}
    log = logging.getLogger("test")
    return kind(scope, transport, FlowControl(transport), log, log, False,  # type: ignore[arg-type]
                [(b"server", b"uvicorn")], asyncio.Event(), False, keep_alive, lambda: None)


async def _run(kind: type[RequestResponseCycle], messages: list[Message | None],
               keep_alive: bool = True) -> Transport:
    """Send `messages` in order; None lets the event loop run a tick or two between them."""
    transport = Transport()
    cycle = _cycle(kind, transport, keep_alive)
    for message in messages:
        if message is None:
            await asyncio.sleep(0)
            await asyncio.sleep(0)
        else:
            await cycle.send(message)  # type: ignore[arg-type]
    await asyncio.sleep(0)
    return transport


JSON: list[Message] = [{"type": "http.response.start", "status": 200,
         "headers": [(b"content-type", b"application/json"), (b"content-length", b"2"),
                     (b"x-request-id", b"abc")]},
        {"type": "http.response.body", "body": b"{}"}]
STREAM: list[Message] = [{"type": "http.response.start", "status": 200,
           "headers": [(b"content-type", b"text/event-stream")]},
          {"type": "http.response.body", "body": b"data: 1\n\n", "more_body": True},
          {"type": "http.response.body", "body": b"data: 2\n\n", "more_body": True},
          {"type": "http.response.body", "body": b""}]


@pytest.mark.parametrize("messages", [JSON, STREAM], ids=["json", "stream"])
async def test_the_head_goes_out_with_the_first_body_part(messages: list[Message]) -> None:
    theirs = await _run(RequestResponseCycle, list(messages))
    ours = await _run(HeadWithBody, list(messages))
    assert b"".join(ours.writes) == b"".join(theirs.writes)
    assert len(ours.writes) == len(theirs.writes) - 1
    assert ours.writes[0].startswith(b"HTTP/1.1 200 OK\r\nserver: uvicorn\r\n")


async def test_a_head_whose_body_is_late_is_written_at_the_end_of_its_tick() -> None:
    ours = await _run(HeadWithBody, [JSON[0], None])
    assert len(ours.writes) == 1 and ours.writes[0].endswith(b"x-request-id: abc\r\n\r\n")
    late = await _run(HeadWithBody, [JSON[0], None, JSON[1]])
    assert late.writes[1:] == [b"{}"]


async def test_connection_close_is_honoured() -> None:
    ours = await _run(HeadWithBody, list(JSON), keep_alive=False)
    assert b"connection: close\r\n" in ours.writes[0] and ours.closed


@pytest.mark.parametrize("header", [(b"x-bad name", b"v"), (b"x-ok", b"a\nb"),
                                    (b"x-ok", b"a\x00")])
async def test_bad_headers_are_refused_as_uvicorn_refuses_them(
        header: tuple[bytes, bytes]) -> None:
    start: Message = {"type": "http.response.start", "status": 200,
             "headers": [(b"content-type", b"application/json"), header]}
    for kind in (RequestResponseCycle, HeadWithBody):
        with pytest.raises(RuntimeError, match="Invalid HTTP header"):
            await _run(kind, [start])


@pytest.mark.parametrize(("body", "error"), [(b"{}!", "longer"), (b"{", "shorter")])
async def test_a_body_that_breaks_its_content_length_is_refused_as_uvicorn_refuses_it(
        body: bytes, error: str) -> None:
    messages: list[Message] = [JSON[0], {"type": "http.response.body", "body": body}]
    for kind in (RequestResponseCycle, HeadWithBody):
        with pytest.raises(RuntimeError, match=f"Response content {error} than Content-Length"):
            await _run(kind, list(messages))


async def test_a_body_in_parts_after_its_content_length_head_is_written_as_it_comes() -> None:
    start: Message = {"type": "http.response.start", "status": 200,
                      "headers": [(b"content-length", b"4")]}
    parts: list[Message] = [start, {"type": "http.response.body", "body": b"ab", "more_body": True},
                            {"type": "http.response.body", "body": b"cd"}]
    theirs = await _run(RequestResponseCycle, list(parts))
    ours = await _run(HeadWithBody, list(parts))
    assert b"".join(ours.writes) == b"".join(theirs.writes)
    assert len(ours.writes) == len(theirs.writes) - 1


async def test_a_held_head_is_dropped_when_the_connection_closed_before_its_tick_ended() -> None:
    transport = Transport()
    cycle = _cycle(HeadWithBody, transport)
    await cycle.send(JSON[0])  # type: ignore[arg-type]
    transport.close()  # as uvicorn does when the app fails after starting its response
    await asyncio.sleep(0)
    assert transport.writes == []


async def test_a_part_written_directly_is_framed_as_uvicorn_frames_a_sent_one() -> None:
    """`write_part` (the relay's push) writes what `send` would, once the head is out."""
    start: Message = {"type": "http.response.start", "status": 200,
                      "headers": [(b"content-type", b"text/event-stream")]}
    first: Message = {"type": "http.response.body", "body": b"data: 1\n\n", "more_body": True}
    pushed: Message = {"type": "http.response.body", "body": b"data: 2\n\n", "more_body": True}
    end: Message = {"type": "http.response.body", "body": b""}
    theirs = await _run(RequestResponseCycle, [start, first, pushed, end])
    transport = Transport()
    cycle = _cycle(HeadWithBody, transport)
    assert isinstance(cycle, HeadWithBody)
    await cycle.send(start)  # type: ignore[arg-type]
    assert not cycle.write_part(b"data: 0\n\n")  # the head is still held: `send` must go first
    await cycle.send(first)  # type: ignore[arg-type]
    assert cycle.write_part(pushed["body"])
    await cycle.send(end)  # type: ignore[arg-type]
    assert b"".join(transport.writes) == b"".join(theirs.writes)
    assert not cycle.write_part(b"data: 3\n\n")  # the response is complete


async def test_a_part_is_not_written_directly_while_writes_are_paused_or_the_client_is_gone(
) -> None:
    transport = Transport()
    cycle = _cycle(HeadWithBody, transport)
    assert isinstance(cycle, HeadWithBody)
    await cycle.send({"type": "http.response.start", "status": 200, "headers": []})
    await cycle.send({"type": "http.response.body", "body": b"a", "more_body": True})
    written = len(transport.writes)
    cycle.flow.pause_writing()
    assert not cycle.write_part(b"b")
    cycle.flow.resume_writing()
    assert cycle.write_part(b"b")
    cycle.disconnected = True
    assert not cycle.write_part(b"c")
    assert transport.writes[written:] == [b"1\r\nb\r\n"]


def test_the_direct_writer_is_found_only_behind_an_unwrapped_send() -> None:
    from gateway.api.asgi import direct_body_writer

    cycle = _cycle(HeadWithBody, Transport())
    assert isinstance(cycle, HeadWithBody)
    assert direct_body_writer(cycle.send) == cycle.write_part

    async def wrapped(message: Any) -> None:
        await cycle.send(message)

    assert direct_body_writer(wrapped) is None
    assert direct_body_writer(_cycle(RequestResponseCycle, Transport()).send) is None
