"""The OpenAI-compatible surface: `/v1/chat/completions` and `/v1/models`.

The chat endpoint is a raw ASGI callable (see gateway/api/asgi.py for why); `/v1/models` is an
ordinary Starlette endpoint mounted in the FastAPI app.
"""

from __future__ import annotations

import logging

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from gateway.api.asgi import (
    RequestHeaders,
    RequestIds,
    header_list,
    read_body,
    send_error,
    send_event_stream,
    send_json,
    send_whole_event_stream,
)
from gateway.api.json import json_response
from gateway.errors import GatewayError
from gateway.request import parse_chat_request
from gateway.routing.failover import Attempts
from gateway.routing.policy import Target
from gateway.state import GatewayState

log = logging.getLogger("gateway")

CHAT_PATHS = frozenset({"/v1/chat/completions", "/chat/completions"})


class ChatCompletions:
    """`POST /v1/chat/completions`, streaming or not."""

    def __init__(self, state: GatewayState) -> None:
        self.state = state
        self._new_id = RequestIds()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = RequestHeaders(scope, self._new_id)
        started = False
        in_flight = self.state.metrics.in_flight
        in_flight.inc()
        try:
            state = self.state
            client = scope.get("client")
            principal = await state.auth.authenticate(
                headers.authorization, headers.api_key, client[0] if client else None)
            raw = await read_body(receive, headers.content_length, state.config.max_body_bytes)
            req = parse_chat_request(raw, state.catalogue)
            extra = await state.admission.admit(principal, req.model.canonical, req.requested_model)
            if req.stream:
                answer = await state.proxy.stream(
                    req, headers.request_id, headers.pinned, principal)
                started = True
                extra.update(_served_by(answer.target, answer.attempts))
                if answer.whole is not None:
                    await send_whole_event_stream(
                        send, answer.whole, header_list(headers.request_id, extra))
                else:
                    assert answer.chunks is not None
                    await send_event_stream(scope, receive, send, answer.chunks,
                                            header_list(headers.request_id, extra))
                return
            completion = await state.proxy.complete(
                req, headers.request_id, headers.pinned, principal)
            started = True
            extra.update(_served_by(completion.target, completion.attempts))
            await send_json(send, 200, completion.body, header_list(headers.request_id, extra))
        except GatewayError as err:
            if not started:
                await send_error(send, err, headers.request_id)
        except Exception:
            log.exception("unhandled error in request %s", headers.request_id)
            if not started:
                await send_error(send, GatewayError(
                    f"The gateway hit an internal error (request id {headers.request_id}).",
                    code="internal_error"), headers.request_id)
        finally:
            in_flight.dec()


def _served_by(target: Target, attempts: Attempts) -> dict[str, str]:
    return {
        "x-gateway-provider": target.provider.name,
        "x-gateway-upstream-model": target.upstream_model,
        "x-gateway-attempts": attempts.header(),
    }


async def list_models(request: Request) -> Response:
    """Every name the gateway accepts for a model some configured provider can serve."""
    state: GatewayState = request.app.state.gateway
    await state.auth.authenticate_request(request)
    servable = state.routes.servable_models()
    data = [
        {"id": name, "object": "model", "created": 0, "owned_by": "switchyard"}
        for name in state.catalogue.names()
        if state.catalogue.resolve(name).canonical in servable
    ]
    return json_response({"object": "list", "data": data})
