"""The one owner of a call's usage event.

Created when a request arrives, filled in as the pipeline learns who is calling, what they
asked for and who served it, and handed to the usage sink exactly once, whatever happens:
answered, failed upstream, interrupted, cancelled by the client, or refused by the gateway
(bad request, auth, unknown model, too large, rate limit, budget).
"""

from __future__ import annotations

import time

from gateway.core.call import Call
from gateway.errors import GatewayError, UpstreamError
from gateway.keys.principal import Principal
from gateway.routing.failover import Attempts
from gateway.routing.policy import Target
from gateway.usage import Usage, UsageEvent, UsageSink

# Rough characters per token, for streams that end before the upstream reported usage.
_CHARS_PER_TOKEN = 4


class CallRecord:
    __slots__ = ("_event", "_sink", "started")

    def __init__(self, sink: UsageSink, api: str, request_id: str) -> None:
        self._sink: UsageSink | None = sink
        self.started = time.monotonic()
        self._event = UsageEvent(request_id=request_id, requested_model="", model="",
                                 thinking="", stream=False, status="pending", api=api)

    @property
    def open(self) -> bool:
        return self._sink is not None

    @property
    def event(self) -> UsageEvent:
        """The call's event (complete once the record is closed): for its trace span."""
        return self._event

    def identify(self, principal: Principal) -> None:
        event = self._event
        event.principal = principal
        event.key_id = principal.key_id
        event.team = principal.team

    def describe(self, call: Call) -> None:
        event = self._event
        event.requested_model = call.requested_model
        event.model = call.model.canonical
        event.thinking = call.thinking.label
        event.stream = call.stream
        event.client_user = call.user

    def served_by(self, target: Target, attempts: Attempts) -> None:
        """An upstream is answering; the gateway's own time so far is everything else."""
        event = self._event
        event.provider = target.provider.name
        event.upstream_model = target.upstream_model
        event.attempts = attempts.items
        event.overhead_s = time.monotonic() - self.started - attempts.upstream_s

    def answered(self, usage: Usage | None) -> None:
        """A whole (non-streamed) answer: its first token is the answer itself."""
        self._event.ttft_s = time.monotonic() - self.started
        self._close("ok", usage)

    def stream_ended(self, status: str, usage: Usage | None, first_token_at: float | None,
                     error: GatewayError | None = None) -> None:
        if first_token_at is not None:
            self._event.ttft_s = first_token_at - self.started
        if error is not None:
            self._event.error_type = error.code or error.error_type
        self._close(status, usage)

    def failed(self, error: UpstreamError, attempts: Attempts) -> None:
        """Every target failed (or the one tried refused the request)."""
        self._event.attempts = attempts.items
        self._event.error_type = error.code or error.error_type
        self._close("error", None)

    def refused(self, error: GatewayError) -> None:
        """The gateway itself turned the call away: no upstream was asked."""
        self._event.error_type = error.reason
        self._close("refused", None)

    def abandoned(self, status: str = "error", reason: str | None = None) -> None:
        """Whatever was not recorded by the time the request ended (a bug, a hang-up)."""
        if self._sink is not None:
            if reason is not None:
                self._event.error_type = reason
            self._close(status, None)

    def _close(self, status: str, usage: Usage | None) -> None:
        sink, self._sink = self._sink, None
        if sink is None:
            return
        event = self._event
        event.status = status
        event.usage = usage
        event.latency_s = time.monotonic() - self.started
        sink.record(event)


def estimate_usage(relayed_chars: int) -> Usage | None:
    """Completion tokens from what was relayed, when the upstream never said."""
    if not relayed_chars:
        return None
    return Usage(completion_tokens=max(1, relayed_chars // _CHARS_PER_TOKEN), estimated=True)
