"""Liveness and readiness, for load balancers and Kubernetes probes."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from gateway.api.json import json_response
from gateway.state import GatewayState


async def healthz(request: Request) -> Response:
    """Alive: the process answers. Nothing else is checked, so it never flaps."""
    return json_response({"status": "ok"})


async def metrics(request: Request) -> Response:
    """Prometheus exposition. Unauthenticated, like most scrape targets: it carries counts and
    state, never keys, prompts or client identities."""
    state: GatewayState = request.app.state.gateway
    body, content_type = state.metrics.render()
    return Response(body, media_type=content_type)


async def readyz(request: Request) -> Response:
    """Ready: the upstream pool is open and at least one provider can serve traffic."""
    state: GatewayState = request.app.state.gateway
    providers = sorted(state.config.usable_providers())
    checks = {
        "upstream_client": state.client.started,
        "providers": bool(providers),
    }
    ready = all(checks.values())
    return json_response(
        {"status": "ready" if ready else "not_ready", "checks": checks, "providers": providers},
        status=200 if ready else 503,
    )
