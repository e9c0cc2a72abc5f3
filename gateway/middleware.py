"""A pure-ASGI middleware that gives every answer of the FastAPI side an `x-request-id`.

Pure ASGI rather than Starlette's BaseHTTPMiddleware, which costs a task and a queue per
request. The client's own id is kept when it sends one, by the same rule and with the same id
source as the chat hot path (gateway/api/asgi.py), which does this itself.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.api.asgi import RequestIds, client_request_id


class RequestIdMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._new_id = RequestIds()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = next((v for n, v in scope["headers"] if n == b"x-request-id"), None)
        request_id = (client_request_id(given) if given is not None else None) or self._new_id()
        scope.setdefault("state", {})["request_id"] = request_id
        raw_id = request_id.encode()

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), (b"x-request-id", raw_id)]
            await send(message)

        await self.app(scope, receive, send_with_id)
