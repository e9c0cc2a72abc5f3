"""Traces over OTLP/HTTP, received by a real OTLP/HTTP endpoint that decodes the protobuf."""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from gateway.tracing import Tracing
from tests.e2e.conftest import GatewayFactory
from tests.upstream.common import Faults

pytestmark = pytest.mark.usefixtures("upstreams")


class Receiver:
    """`POST /v1/traces` as a collector answers it; keeps every span it was sent."""

    def __init__(self) -> None:
        self.spans: list[Span] = []
        self.resources: list[dict[str, Any]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
                request = ExportTraceServiceRequest.FromString(body)
                for resource_spans in request.resource_spans:
                    receiver.resources.append(_attrs(resource_spans.resource.attributes))
                    for scope in resource_spans.scope_spans:
                        receiver.spans.extend(scope.spans)
                answer = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200 if self.path == "/v1/traces" else 404)
                self.send_header("content-type", "application/x-protobuf")
                self.send_header("content-length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait(self, count: int) -> list[Span]:
        deadline = time.monotonic() + 10
        while len(self.spans) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        return list(self.spans)


def _attrs(attributes: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for kv in attributes:
        kind = kv.value.WhichOneof("value")
        out[kv.key] = getattr(kv.value, kind) if kind else None
    return out


@pytest.fixture
def receiver(monkeypatch: pytest.MonkeyPatch) -> Iterator[Receiver]:
    rx = Receiver()
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", rx.url)
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "50")
    monkeypatch.setenv("OTEL_SERVICE_NAME", "switchyard-test")
    yield rx
    rx.server.shutdown()


def test_a_call_and_its_attempts_are_spans_in_the_clients_trace(
    make_gateway: GatewayFactory, upstreams: Any, receiver: Receiver
) -> None:
    upstreams.ollama.faults = Faults(status=503)
    gateway = make_gateway(["ollama", "deepseek"])
    trace_id, parent_id = secrets.token_hex(16), secrets.token_hex(8)
    response = httpx.post(
        gateway.url + "/v1/chat/completions", timeout=20,
        headers={"traceparent": f"00-{trace_id}-{parent_id}-01"},
        json={"model": "deepseek-chat", "messages": [{"role": "user", "content": "hi"}]})
    assert response.status_code == 200
    spans = receiver.wait(3)
    assert len(spans) == 3, spans
    [call] = [s for s in spans if s.kind == Span.SPAN_KIND_SERVER]
    attempts = sorted((s for s in spans if s.kind == Span.SPAN_KIND_CLIENT),
                      key=lambda s: s.start_time_unix_nano)
    assert {s.trace_id.hex() for s in spans} == {trace_id}
    assert call.parent_span_id.hex() == parent_id
    assert call.name == "chat deepseek-v4-flash"
    attrs = _attrs(call.attributes)
    assert attrs["gen_ai.operation.name"] == "chat"
    assert attrs["gen_ai.request.model"] == "deepseek-chat"
    assert attrs["gen_ai.response.model"] == "deepseek-v4-flash"
    assert attrs["gen_ai.system"] == "deepseek"
    assert attrs["gen_ai.usage.input_tokens"] > 0 and attrs["gen_ai.usage.output_tokens"] > 0
    assert attrs["gateway.attempts"] == "ollama:503,deepseek:200"
    assert [s.parent_span_id for s in attempts] == [call.span_id, call.span_id]
    first, second = (_attrs(s.attributes) for s in attempts)
    assert (first["gen_ai.system"], first["error.type"]) == ("ollama", first["error.type"])
    assert attempts[0].status.code == 2 and attempts[1].status.code != 2  # ERROR, then not
    assert second["gen_ai.system"] == "deepseek"
    assert second["gen_ai.request.model"] == "deepseek-v4-flash"
    # each provider saw its own attempt's span as the parent
    sent = upstreams.deepseek.requests[-1].headers
    sent = {k.lower(): v for k, v in sent.items()}
    assert sent["traceparent"] == f"00-{trace_id}-{attempts[1].span_id.hex()}-01"
    assert receiver.resources[0]["service.name"] == "switchyard-test"


def test_a_stream_without_traceparent_starts_a_trace(
    make_gateway: GatewayFactory, upstreams: Any, receiver: Receiver
) -> None:
    gateway = make_gateway(["deepseek"])
    with httpx.stream("POST", gateway.url + "/v1/chat/completions", timeout=20,
                      json={"model": "deepseek-v4-pro", "stream": True,
                            "messages": [{"role": "user", "content": "hi"}]}) as response:
        assert response.status_code == 200
        response.read()
    spans = receiver.wait(2)
    [call] = [s for s in spans if s.kind == Span.SPAN_KIND_SERVER]
    assert call.parent_span_id == b"" and call.name == "chat deepseek-v4-pro"
    [attempt] = [s for s in spans if s.kind == Span.SPAN_KIND_CLIENT]
    assert attempt.parent_span_id == call.span_id


def test_tracing_is_off_without_an_endpoint() -> None:
    assert Tracing.from_env({}) is None
    assert Tracing.from_env({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://x",
                             "OTEL_SDK_DISABLED": "true"}) is None
