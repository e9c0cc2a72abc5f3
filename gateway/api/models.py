"""`GET /v1/models`: every name the gateway accepts for a model some provider can serve, in the
shape of the API asking (Anthropic's when the request carries `anthropic-version`)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from gateway.api.json import json_response
from gateway.state import GatewayState


async def list_models(request: Request) -> Response:
    state: GatewayState = request.app.state.gateway
    await state.auth.authenticate_request(request)
    servable = state.routes.servable_models()
    names = [name for name in state.catalogue.names()
             if state.catalogue.resolve(name).canonical in servable]
    for surface in state.surfaces:
        listing = surface.model_listing(request.headers, names)
        if listing is not None:
            return Response(listing, media_type="application/json")
    data = [{"id": name, "object": "model", "created": 0, "owned_by": "switchyard"}
            for name in names]
    return json_response({"object": "list", "data": data})
