"""`GET` / `DELETE /v1/responses/{id}` and `GET /v1/responses/{id}/input_items`.

Authenticated like every API route; a caller sees only the responses its own key made (any
other id, expired or deleted, is the same 404, so ids of other keys cannot be probed). Without
a database there is nothing to read: every id is a 404 that says why. Errors are OpenAI's
shape (the app's handlers render the GatewayErrors raised here).

`input_items` pages as OpenAI's cursor lists do: `order` (desc by default), `limit` (1-100,
default 20), `after` (an item id), answering `{object: list, data, first_id, last_id,
has_more}`; it lists the input of that request, not of the responses before it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from gateway.api.json import json_response
from gateway.errors import GatewayError, InvalidRequest, NotFound
from gateway.state import GatewayState
from gateway.surfaces.openai_responses.store import ResponseStore, StoredResponse

Endpoint = Callable[[Request], Awaitable[Response]]

NOT_STORED = ("this gateway keeps no responses: storing them needs its database, and it has "
              "none (metering is off)")
_MAX_LIMIT = 100
_DEFAULT_LIMIT = 20


class ResponseRoutes:
    def __init__(self, store: ResponseStore | None) -> None:
        self._store = store

    def routes(self, prefixes: tuple[str, ...]) -> list[tuple[str, Endpoint, str]]:
        """(path, endpoint, method) for the app's router, under each prefix."""
        out: list[tuple[str, Endpoint, str]] = []
        for prefix in prefixes:
            out += [(prefix + "/{response_id}", self.retrieve, "GET"),
                    (prefix + "/{response_id}", self.delete, "DELETE"),
                    (prefix + "/{response_id}/input_items", self.input_items, "GET")]
        return out

    async def retrieve(self, request: Request) -> Response:
        if request.query_params.get("stream") in ("true", "1"):
            raise InvalidRequest("stream: replaying a stored response as events is not "
                                 "supported by this gateway", param="stream")
        stored = await self._find(request)
        return json_response(stored.response)

    async def delete(self, request: Request) -> Response:
        owner, response_id = await self._caller(request)
        store = self._require_store(response_id)
        if not await _available(store.delete(response_id, owner)):
            raise _not_found(response_id)
        return json_response({"id": response_id, "object": "response", "deleted": True})

    async def input_items(self, request: Request) -> Response:
        stored = await self._find(request)
        query = request.query_params
        order = query.get("order", "desc")
        if order not in ("asc", "desc"):
            raise InvalidRequest("order: must be asc or desc", param="order")
        limit = _limit(query.get("limit"))
        items = stored.input_items if order == "asc" else stored.input_items[::-1]
        after = query.get("after")
        if after:
            ids = [item.get("id") for item in items]
            if after not in ids:
                raise InvalidRequest(f"after: no input item {after!r} in this response",
                                     param="after")
            items = items[ids.index(after) + 1:]
        page = items[:limit]
        return json_response({
            "object": "list",
            "data": page,
            "first_id": page[0].get("id") if page else None,
            "last_id": page[-1].get("id") if page else None,
            "has_more": len(items) > limit,
        })

    async def _caller(self, request: Request) -> tuple[str | None, str]:
        state: GatewayState = request.app.state.gateway
        principal = await state.auth.authenticate_request(request)
        return principal.key_id, str(request.path_params["response_id"])

    async def _find(self, request: Request) -> StoredResponse:
        owner, response_id = await self._caller(request)
        store = self._require_store(response_id)
        stored: StoredResponse | None = await _available(store.get(response_id, owner))
        if stored is None:
            raise _not_found(response_id)
        return stored

    def _require_store(self, response_id: str) -> ResponseStore:
        if self._store is None:
            raise NotFound(f"Response with id '{response_id}' not found: {NOT_STORED}.",
                           param="response_id", code="responses_not_stored")
        return self._store


async def _available(pending: Awaitable[Any]) -> Any:
    """The store's answer; a database that cannot answer is a 503, not a 500."""
    try:
        return await pending
    except Exception:
        raise GatewayError("Stored responses cannot be read right now; try again shortly.",
                           status=503, code="store_unavailable") from None


def _not_found(response_id: str) -> NotFound:
    return NotFound(f"Response with id '{response_id}' not found.", param="response_id")


def _limit(value: str | None) -> int:
    if value is None:
        return _DEFAULT_LIMIT
    if not value.isdigit() or not 1 <= int(value) <= _MAX_LIMIT:
        raise InvalidRequest(f"limit: must be an integer from 1 to {_MAX_LIMIT}", param="limit")
    return int(value)
