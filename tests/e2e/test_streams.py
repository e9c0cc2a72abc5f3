"""Streams that fail, get cut, fail over before the first token, or lose their client."""

from __future__ import annotations

import socket
import time

import httpx
import openai
import orjson
import pytest

from gateway.core.relay import Relay
from tests.e2e.conftest import GatewayFactory, Upstreams
from tests.upstream.common import Faults

BODY = {"model": "deepseek-v4-flash", "stream": True,
        "messages": [{"role": "user", "content": "tell me a long story please"}]}


# How the gateway relays a running stream: `pushed` from the upstream connection's callback
# straight to the client (the default), or `pulled` by the request's task through ASGI `send`,
# which is what a middleware wrapping `send` leaves it (CORS, on a request with an Origin).
RELAYS = {
    "pushed": ("", {}),
    "pulled": ("cors_origins: [https://app.example]\n", {"origin": "https://app.example"}),
}


def sse_payloads(response: httpx.Response) -> list[bytes]:
    return [line[6:] for line in response.iter_lines() if line.startswith("data: ")]  # type: ignore[misc]


@pytest.mark.parametrize("relay", RELAYS)
@pytest.mark.parametrize(
    ("provider", "fault"),
    [
        ("openrouter", Faults(midstream_error_after=4, chunk_delay_ms=20)),
        ("ollama", Faults(midstream_error_after=4, chunk_delay_ms=20)),
        ("deepseek", Faults(cut_after_chunks=4, chunk_delay_ms=20)),
        ("ollama", Faults(cut_after_chunks=4, chunk_delay_ms=20)),
    ],
)
def test_failure_after_the_first_token_ends_with_one_error_event(
    make_gateway: GatewayFactory, upstreams: Upstreams, provider: str, fault: Faults,
    relay: str,
) -> None:
    yaml, headers = RELAYS[relay]
    upstreams[provider].faults = fault
    gateway = make_gateway([provider, "deepseek"] if provider != "deepseek" else [provider],
                           yaml=yaml)
    with gateway.http() as http, http.stream("POST", "/v1/chat/completions", json=BODY,
                                             headers=headers) as r:
        assert r.status_code == 200
        assert r.headers["x-gateway-provider"] == provider
        payloads = [str(p) for p in sse_payloads(r)]
    *chunks, last = payloads
    error = orjson.loads(last)["error"]
    assert error["message"] and error["type"] == "api_error"
    assert chunks and all("error" not in orjson.loads(c) for c in chunks)
    assert "[DONE]" not in payloads
    # no failover after bytes were sent: the second target was never called
    assert upstreams.deepseek.requests == [] or provider == "deepseek"
    [event] = gateway.sink.events
    assert event.status == "interrupted"
    assert event.usage is not None and event.usage.completion_tokens > 0


def test_the_sdk_raises_on_a_mid_stream_error(
    make_gateway: GatewayFactory, upstreams: Upstreams
) -> None:
    upstreams.openrouter.faults = Faults(midstream_error_after=3, chunk_delay_ms=20)
    stream = make_gateway(["openrouter"]).openai().chat.completions.create(
        model="deepseek-v4-flash", messages=BODY["messages"], stream=True)  # type: ignore[arg-type]
    with pytest.raises(openai.APIError):
        for _ in stream:
            pass


@pytest.mark.parametrize(
    "fault",
    [Faults(status=503), Faults(status=429, retry_after=1), Faults(reset=True),
     Faults(garbage=True), Faults(midstream_error_after=0), Faults(cut_after_chunks=0)],
)
def test_a_stream_that_fails_before_its_first_token_fails_over(
    make_gateway: GatewayFactory, upstreams: Upstreams, fault: Faults
) -> None:
    upstreams.ollama.faults = fault
    gateway = make_gateway(["ollama", "deepseek"])
    raw = gateway.openai().chat.completions.with_raw_response.create(
        model="deepseek-v4-flash", messages=BODY["messages"], stream=True)  # type: ignore[arg-type]
    text = "".join(c.choices[0].delta.content or "" for c in raw.parse() if c.choices)
    assert text == "echo: tell me a long story please"
    assert raw.headers["x-gateway-provider"] == "deepseek"
    attempts = raw.headers["x-gateway-attempts"].split(",")
    assert attempts[0].startswith("ollama:") and attempts[1] == "deepseek:200"


def test_non_streamed_failover_and_no_failover_on_client_errors(
    make_gateway: GatewayFactory, upstreams: Upstreams
) -> None:
    gateway = make_gateway(["ollama", "openrouter", "deepseek"])
    upstreams.ollama.faults = Faults(status=503)
    upstreams.openrouter.faults = Faults(status=502)
    raw = gateway.openai().chat.completions.with_raw_response.create(
        model="deepseek-chat", messages=BODY["messages"])
    assert raw.headers["x-gateway-attempts"] == "ollama:503,openrouter:502,deepseek:200"
    assert raw.parse().choices[0].message.content == "echo: tell me a long story please"
    upstreams.ollama.faults = Faults(status=400)
    with pytest.raises(openai.BadRequestError):
        gateway.openai().chat.completions.create(model="deepseek-chat",
                                                 messages=BODY["messages"])
    assert len(upstreams.deepseek.requests) == 1  # the 400 was not retried elsewhere


@pytest.mark.parametrize("relay", RELAYS)
def test_a_client_that_disconnects_cancels_the_upstream_request(
    make_gateway: GatewayFactory, upstreams: Upstreams, relay: str
) -> None:
    yaml, headers = RELAYS[relay]
    upstreams.deepseek.faults = Faults(chunk_delay_ms=200)
    gateway = make_gateway(["deepseek"], yaml=yaml)
    body = {**BODY, "messages": [{"role": "user", "content": " ".join(["word"] * 50)}]}
    with gateway.http() as http, http.stream("POST", "/v1/chat/completions", json=body,
                                             headers=headers) as r:
        for line in r.iter_lines():
            if "word" in line:
                break  # got the first token; hang up
    deadline = time.monotonic() + 5
    while upstreams.deepseek.disconnects == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert upstreams.deepseek.disconnects == 1
    while not gateway.sink.events and time.monotonic() < deadline:
        time.sleep(0.05)
    assert gateway.sink.events[0].status == "client_cancelled"


@pytest.mark.parametrize("relay", RELAYS)
def test_chunks_are_relayed_as_they_arrive_not_buffered(
    make_gateway: GatewayFactory, upstreams: Upstreams, relay: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The upstream pauses 100 ms between events: the client must see the first words long
    before the last (a buffering relay would deliver them all at the end)."""
    yaml, headers = RELAYS[relay]
    pushed: list[bytes] = []
    push = Relay._push

    def counted(self: Relay, data: bytes) -> bool:
        pushed.append(data)
        return push(self, data)

    monkeypatch.setattr(Relay, "_push", counted)
    upstreams.deepseek.faults = Faults(chunk_delay_ms=100)
    gateway = make_gateway(["deepseek"], yaml=yaml)
    body = {**BODY, "messages": [{"role": "user", "content": "one two three four five six"}]}
    arrivals: list[float] = []
    with gateway.http() as http, http.stream("POST", "/v1/chat/completions", json=body,
                                             headers=headers) as r:
        for line in r.iter_lines():
            if line.startswith("data: {") and '"content":"' in line:
                arrivals.append(time.monotonic())
    assert len(arrivals) >= 6
    assert arrivals[-1] - arrivals[0] >= 0.5
    # each mode is the one named: reads went through the push only when `send` was not wrapped
    assert ("access-control-allow-origin" in r.headers) == (relay == "pulled")
    assert (len(pushed) >= 5) == (relay == "pushed")


@pytest.mark.parametrize("relay", RELAYS)
def test_a_client_that_reads_slowly_gets_every_byte_in_order(
    make_gateway: GatewayFactory, upstreams: Upstreams, relay: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """~1 MB streamed to a client that reads nothing for a while, through small socket buffers:
    the gateway's writes to it pause (the pushed relay hands them back to the task, which
    waits for the client), and the client still gets the whole answer, in order."""
    from gateway.serving import HeadWithBody

    yaml, headers = RELAYS[relay]
    refused: list[bool] = []
    write_part = HeadWithBody.write_part

    def watched(self: HeadWithBody, body: bytes) -> bool:
        # the kernel's own buffers would take the whole answer: keep the gateway's small
        self.transport.get_extra_info("socket").setsockopt(
            socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        written = write_part(self, body)
        if not written and self.flow.write_paused:
            refused.append(True)
        return written

    monkeypatch.setattr(HeadWithBody, "write_part", watched)
    gateway = make_gateway(["deepseek"], yaml=yaml)
    words = [f"w{i:05d}" + "x" * 1000 for i in range(900)]  # the simulator takes <= 1 MB
    body = orjson.dumps({**BODY, "messages": [{"role": "user", "content": " ".join(words)}]})
    host, port = gateway.url.removeprefix("http://").split(":")
    with socket.socket() as client:
        client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        client.connect((host, int(port)))
        head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        client.sendall(f"POST /v1/chat/completions HTTP/1.1\r\nhost: {host}\r\n"
                       f"content-type: application/json\r\ncontent-length: {len(body)}\r\n"
                       f"connection: close\r\n{head}\r\n".encode() + body)
        time.sleep(1.5)  # read nothing: the gateway's writes to this client pause
        received = b"".join(iter(lambda: client.recv(65536), b""))
    status, _, rest = received.partition(b"\r\n\r\n")
    assert status.startswith(b"HTTP/1.1 200")
    stream = b""
    while rest:  # undo the chunked framing
        size, _, rest = rest.partition(b"\r\n")
        stream, rest = stream + rest[:int(size, 16)], rest[int(size, 16) + 2:]
    text = [choice["delta"].get("content") or ""
            for line in stream.split(b"\n") if line.startswith(b"data: {")
            for choice in orjson.loads(line[6:])["choices"]]
    assert "".join(text) == "echo: " + " ".join(words)
    assert stream.endswith(b"data: [DONE]\n\n")
    assert (len(refused) >= 1) == (relay == "pushed")


@pytest.mark.parametrize("include_usage", [False, True])
def test_the_pushed_and_pulled_relays_send_the_same_events(
    make_gateway: GatewayFactory, upstreams: Upstreams, include_usage: bool,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The pushed relay writes a read that is one fast-path event as it came, unsplit and
    unrendered, to a Chat client that gets such events as they are (`StreamRenderer.verbatim`:
    not one that asked for `include_usage`); the pulled relay decodes and renders every read.
    Both must send the same events: plain, quoted, escaped and non-ASCII words, in content
    and in reasoning, one event per read."""
    from gateway.providers.stream import SSESplitter

    whole: list[bytes] = []
    one_event = SSESplitter.one_event

    def watched(self: SSESplitter, chunk: bytes) -> bytes | None:
        event = one_event(self, chunk)
        if event is not None:
            whole.append(event)
        return event

    monkeypatch.setattr(SSESplitter, "one_event", watched)
    upstreams.deepseek.faults = Faults(chunk_delay_ms=5)  # a read per event
    words = 'plain words "quoted" back\\slash tab\there naïve 😀 日本 and then plain words again'
    body: dict[str, object] = {**BODY, "messages": [{"role": "user", "content": words}]}
    if include_usage:
        body["stream_options"] = {"include_usage": True}
    sent: dict[str, list[dict[str, object]]] = {}
    for relay, (yaml, headers) in RELAYS.items():
        whole.clear()
        gateway = make_gateway(["deepseek"], yaml=yaml)
        with gateway.http() as http, http.stream("POST", "/v1/chat/completions", json=body,
                                                 headers=headers) as r:
            payloads = sse_payloads(r)
        assert payloads[-1] == "[DONE]"
        events = [orjson.loads(p) for p in payloads[:-1]]
        for event in events:  # the simulator's per-request id and time
            event.pop("id"), event.pop("created")
        sent[relay] = events
        # the verbatim path ran, and only where it may
        assert (len(whole) >= 10) == (relay == "pushed" and not include_usage), len(whole)
    assert sent["pushed"] == sent["pulled"]
    deltas = [choice["delta"] for event in sent["pushed"]
              for choice in event["choices"]]  # type: ignore[attr-defined]
    assert "".join(d.get("content") or "" for d in deltas) == "echo: " + words
    assert "".join(d.get("reasoning_content") or "" for d in deltas) == "thinking about: " + words
    assert any("usage" in event and event["usage"] for event in sent["pushed"]) == include_usage
