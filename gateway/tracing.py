"""OpenTelemetry traces, exported over OTLP/HTTP when `OTEL_EXPORTER_OTLP_ENDPOINT` (or
`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set; the other standard `OTEL_*` variables (headers,
service name, sampler, ...) are read by the SDK itself.

Off by default and free when off: `Tracing.from_env()` is None, nothing is imported, and the
hot path tests one attribute for None. When on, a call is one SERVER span (`chat <model>`)
whose parent is the client's W3C `traceparent`, each upstream attempt one CLIENT span under
it, and the attempt's own `traceparent` goes to the provider. Attributes follow the GenAI
semantic conventions (`gen_ai.system`, `gen_ai.request.model`, `gen_ai.usage.input_tokens`,
...); the call span is ended from the call's usage event, so it carries the same tokens,
status and cost as the usage row.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from gateway.usage import UsageEvent

_ENDPOINT_VARS = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")


class Tracing:
    """The tracer and the W3C propagator, or nothing at all (see `from_env`)."""

    def __init__(self, provider: Any) -> None:
        from opentelemetry.trace import SpanKind, Status, StatusCode
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        self._provider = provider
        self._tracer = provider.get_tracer("switchyard")
        self._propagator = TraceContextTextMapPropagator()
        self._kinds = (SpanKind.SERVER, SpanKind.CLIENT)
        self._status = (Status, StatusCode)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Tracing | None:
        env = os.environ if env is None else env
        if env.get("OTEL_SDK_DISABLED", "").lower() == "true":
            return None
        if not any(env.get(name) for name in _ENDPOINT_VARS):
            return None
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        resource = Resource.create({"service.name": env.get("OTEL_SERVICE_NAME")
                                    or "switchyard"})
        provider = TracerProvider(resource=resource)
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        return cls(provider)

    def start_call(self, api: str, traceparent: str | None) -> Any:
        """The call's span, a child of the client's trace when it sent one; also made the
        current span, so attempts (same task) become its children."""
        from opentelemetry import context, trace

        parent = (self._propagator.extract({"traceparent": traceparent})
                  if traceparent else None)
        span = self._tracer.start_span("chat", context=parent, kind=self._kinds[0],
                                       attributes={"gateway.api": api})
        return span, context.attach(trace.set_span_in_context(span, parent))

    def start_attempt(self, provider: str, kind: str, model: str,
                      upstream_model: str) -> tuple[Any, dict[str, str]]:
        """An upstream attempt's span and the headers that carry it to the provider."""
        from opentelemetry import trace

        span = self._tracer.start_span(
            f"chat {upstream_model}", kind=self._kinds[1],
            attributes={"gen_ai.operation.name": "chat", "gen_ai.system": kind,
                        "gen_ai.provider.name": kind, "gen_ai.request.model": model,
                        "gateway.provider": provider, "gateway.upstream_model": upstream_model})
        headers: dict[str, str] = {}
        self._propagator.inject(headers, context=trace.set_span_in_context(span))
        return span, headers

    def end_attempt(self, span: Any, error: BaseException | None) -> None:
        if error is not None:
            status, code = self._status
            span.set_attribute("error.type", getattr(error, "code", None)
                               or type(error).__name__)
            span.set_status(status(code.ERROR, str(getattr(error, "message", "")) or None))
        span.end()

    def end_call(self, started: Any, event: UsageEvent) -> None:
        """Called once, with what `start_call` returned and the call's usage event (the same
        facts as its usage row)."""
        from opentelemetry import context

        span, token = started
        context.detach(token)
        status, code = self._status
        attributes: dict[str, Any] = {
            "gen_ai.operation.name": "chat",
            "gen_ai.request.model": event.requested_model or "",
            "gateway.request_id": event.request_id, "gateway.status": event.status,
            "gateway.attempts": ",".join(f"{p}:{o}" for p, o in event.attempts),
        }
        if event.model:
            span.update_name(f"chat {event.model}")
            attributes["gen_ai.response.model"] = event.model
        if event.provider:
            attributes["gen_ai.system"] = event.provider
            attributes["gateway.provider"] = event.provider
        if event.usage is not None:
            attributes["gen_ai.usage.input_tokens"] = event.usage.prompt_tokens
            attributes["gen_ai.usage.output_tokens"] = event.usage.completion_tokens
        if event.cost_usd is not None:
            attributes["gateway.cost_usd"] = event.cost_usd
        if event.ttft_s is not None:
            attributes["gateway.ttft_s"] = event.ttft_s
        if event.key_id:
            attributes["gateway.key_id"] = event.key_id
        if event.team:
            attributes["gateway.team"] = event.team
        span.set_attributes(attributes)
        if event.status != "ok":
            span.set_attribute("error.type", event.error_type or event.status)
            span.set_status(status(code.ERROR))
        span.end()

    def shutdown(self) -> None:
        """Flush what is batched (at the app's shutdown)."""
        self._provider.shutdown()
