"""The OpenAI-compatible surface: `/v1/chat/completions` and `/v1/models`.

The chat handler is a plain Starlette endpoint, not a FastAPI dependency-injected one: it is
the hot path, and it parses the body itself (see gateway/request.py).
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from gateway.api.json import json_response
from gateway.errors import GatewayError, InvalidRequest
from gateway.request import parse_chat_request
from gateway.state import GatewayState


def _state(request: Request) -> GatewayState:
    state: GatewayState = request.app.state.gateway
    return state


async def chat_completions(request: Request) -> Response:
    state = _state(request)
    state.auth.check(request)
    raw = await read_body(request, state.config.max_body_bytes)
    req = parse_chat_request(raw, state.catalogue)
    request_id: str = request.scope["state"]["request_id"]
    pinned = request.headers.get("x-gateway-provider")
    if req.stream:
        answer = await state.proxy.stream(req, request_id, pinned)
        return StreamingResponse(
            answer.chunks,
            media_type="text/event-stream",
            headers={
                "cache-control": "no-cache",
                "x-gateway-provider": answer.target.provider.name,
                "x-gateway-upstream-model": answer.target.upstream_model,
                "x-gateway-attempts": answer.attempts.header(),
            },
        )
    completion = await state.proxy.complete(req, request_id, pinned)
    return Response(
        completion.body,
        media_type="application/json",
        headers={
            "x-gateway-provider": completion.target.provider.name,
            "x-gateway-upstream-model": completion.target.upstream_model,
            "x-gateway-attempts": completion.attempts.header(),
        },
    )


async def list_models(request: Request) -> Response:
    """Every name the gateway accepts for a model some configured provider can serve."""
    state = _state(request)
    state.auth.check(request)
    servable = state.routes.servable_models()
    data = [
        {"id": name, "object": "model", "created": 0, "owned_by": "switchyard"}
        for name in state.catalogue.names()
        if state.catalogue.resolve(name).canonical in servable
    ]
    return json_response({"object": "list", "data": data})


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refused with 413 as soon as it exceeds `limit` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)


def _too_large(limit: int) -> GatewayError:
    return InvalidRequest(
        f"The request body is larger than this gateway's limit of {limit} bytes.",
        status=413, code="request_too_large",
    )
