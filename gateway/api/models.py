"""`GET /v1/models`: every name the gateway accepts for a model some provider can serve, in the
shape of the API asking (Anthropic's when the request carries `anthropic-version`); OpenAI's
shape also carries each model's generation, limits and current prices."""

from __future__ import annotations

from typing import Any

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
    data = [_entry(state, name) for name in names]
    return json_response({"object": "list", "data": data})


def _entry(state: GatewayState, name: str) -> dict[str, Any]:
    """OpenAI's model object plus what clients size and budget by: the generation, context
    length, maximum output and each provider's price now (USD per 1M tokens, from the book)."""
    canonical = state.catalogue.resolve(name).canonical
    model = state.catalogue.model(canonical)
    entry: dict[str, Any] = {"id": name, "object": "model", "created": 0,
                             "owned_by": "switchyard", "root": canonical}
    if model is not None:
        entry.update(generation=model.generation, context_length=model.context_length,
                     max_output_tokens=model.max_output)
    entry["pricing"] = {
        provider: {"cache_hit": p.cache_hit, "cache_miss": p.cache_miss, "output": p.output,
                   "peak": p.peak, "unit": "USD per 1M tokens"}
        for provider, p in state.routes.current_prices(canonical).items()}
    return entry
