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
    """Ready: the upstream pool is open, at least one provider can serve traffic, and the
    process is not draining for shutdown."""
    state: GatewayState = request.app.state.gateway
    providers = sorted(state.config.usable_providers())
    checks = {
        "upstream_client": state.client.started,
        "providers": bool(providers),
        "not_draining": not request.app.state.drain.draining,  # SIGTERM: 503 at once
    }
    ready = all(checks.values())
    board = state.board
    cooling = {t.key: round(board.in_cooldown(t.key), 1) for t in state.routes.all_targets()
               if board.in_cooldown(t.key) > 0}
    out_of_quota = {name: {"quota": kind, "seconds_left": round(left, 1)}
                    for name, (kind, left) in sorted(board.quota_cooldowns().items())}
    return json_response(
        {"status": "ready" if ready else "not_ready", "checks": checks, "providers": providers,
         "cooling_down": cooling, "out_of_quota": out_of_quota},
        status=200 if ready else 503,
    )
