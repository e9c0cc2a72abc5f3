"""`create_app(config)`: the one place the gateway is assembled.

The factory owns every long-lived object (connection pool, routes, reasoning memory) and ties
their lifetimes to the app's lifespan; nothing lives at module level, so tests build as many
independent gateways as they like.
"""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from gateway.accesslog import AccessLogSink
from gateway.api import admin, ops, ui
from gateway.api.asgi import RequestIds
from gateway.api.json import json_response
from gateway.api.models import list_models
from gateway.api.schema import document_chat_route
from gateway.auth import KeyAuthenticator
from gateway.config import GatewayConfig, load_config
from gateway.core.attempt import Attempter
from gateway.core.dispatch import Dispatcher
from gateway.core.drain import Drain, take_shutdown_signals
from gateway.core.pipeline import Pipeline
from gateway.core.surface import Surface
from gateway.errors import GatewayError, InvalidRequest, NotFound
from gateway.gctune import freeze_after_startup
from gateway.keys.manager import KeyManager
from gateway.keys.store import KeyStore
from gateway.limits.admission import Admission
from gateway.limits.budget import BudgetTracker, SpendUnknown
from gateway.limits.ratelimit import RateLimiter
from gateway.limits.redislink import RedisLink
from gateway.metering.cost import PricingSink
from gateway.metering.setup import build_writer, price_book
from gateway.metering.writer import MeteringWriter
from gateway.metrics import GatewayMetrics
from gateway.middleware import RequestIdMiddleware
from gateway.models import ModelCatalogue
from gateway.providers import build_provider
from gateway.reasoning_memory import ReasoningMemory
from gateway.routing.failover import Failover
from gateway.routing.health import HealthBoard, LatencyTracker
from gateway.routing.policy import RouteTable
from gateway.routing.shared import SharedHealth
from gateway.serving import ConnectionGuard
from gateway.state import GatewayState
from gateway.surfaces.anthropic_messages.surface import AnthropicMessages
from gateway.surfaces.ollama.surface import ollama_surfaces
from gateway.surfaces.openai_chat.errors import error_json, error_object
from gateway.surfaces.openai_chat.surface import OpenAIChat
from gateway.surfaces.openai_responses.surface import OpenAIResponses
from gateway.tracing import Tracing
from gateway.upstream import UpstreamClient
from gateway.usage import FanOutSink, UsageSink

log = logging.getLogger("gateway")

CONFIG_FILE_ENV = "SWITCHYARD_CONFIG"


class GatewayApp:
    """The ASGI app: each surface's POST paths (and the other requests it answers itself,
    `local_routes`) straight to its hot-path pipeline, the rest to FastAPI (which also runs the
    lifespan)."""

    def __init__(self, api: FastAPI, pipelines: list[Pipeline], drain: Drain | None = None) -> None:
        self.api = api
        self.drain = drain or Drain(0)
        # Read by gateway/serving.py's protocol (header-read timeout, connection limit).
        self.connection_guard: ConnectionGuard | None = None
        self.posts = {path: p for p in pipelines for path in p.paths}
        self.others = {route: p for p in pipelines for route in p.local_routes}
        self.state = api.state
        self._entry: ASGIApp = self._dispatch

    def allow_cors(self, origins: list[str]) -> None:
        """Wrap everything, hot path included, in CORS handling. Only when configured: by
        default no CORS headers are sent and nothing is spent on them."""
        self._entry = CORSMiddleware(
            self._dispatch, allow_origins=origins, allow_methods=["GET", "POST"],
            allow_headers=["authorization", "content-type", "x-request-id",
                           "x-gateway-provider", "x-api-key"],
            expose_headers=["x-request-id", "x-gateway-provider", "x-gateway-upstream-model",
                            "x-gateway-attempts", "retry-after", "x-ratelimit-limit-requests",
                            "x-ratelimit-remaining-requests", "x-ratelimit-reset-requests",
                            "x-ratelimit-limit-tokens", "x-ratelimit-remaining-tokens",
                            "x-ratelimit-reset-tokens"],
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._entry(scope, receive, send)

    async def _dispatch(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            if self.drain.draining and scope["path"] not in _DURING_DRAIN and (
                    scope["method"] != "POST" or scope["path"] not in self.posts):
                await _refuse_while_draining(self.drain, send)
                return  # (a surface's POST is refused, and metered, by its pipeline)
            if scope["method"] == "POST":
                pipeline = self.posts.get(scope["path"])
                if pipeline is not None:
                    await pipeline(scope, receive, send)
                    return
            elif self.others:
                pipeline = self.others.get((scope["method"], scope["path"]))
                if pipeline is not None:
                    await pipeline.answer_route(scope, receive, send)
                    return
        await self.api(scope, receive, send)


# Answered as usual during a drain: probes and scrapes (/readyz itself says 503).
_DURING_DRAIN = frozenset({"/readyz", "/healthz", "/metrics"})


async def _refuse_while_draining(drain: Drain, send: Send) -> None:
    error = drain.refusal()
    body = error_json(error)
    await send({"type": "http.response.start", "status": error.status, "headers": [
        (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
        *((k.encode(), v.encode()) for k, v in error.headers.items())]})
    await send({"type": "http.response.body", "body": body})


def create_app(config: GatewayConfig, *, usage_sink: UsageSink | None = None,
               tune_gc: bool = False) -> GatewayApp:
    """`tune_gc`: freeze start-up objects out of the collector (gateway/gctune.py); for the
    process `gateway serve` runs, not for apps a test builds."""
    memory = ReasoningMemory()
    providers = {
        name: build_provider(name, cfg, memory)
        for name, cfg in config.usable_providers().items()
    }
    routes = RouteTable(config, providers, price_book(config))
    board = HealthBoard(config.routing.breaker)
    failover = Failover(routes, board, LatencyTracker(), config.routing)
    link = _redis_link(config)  # the process's one Redis client, with its breaker
    shared = (SharedHealth(board, link, [t.key for t in routes.all_targets()])
              if link is not None else None)
    client = UpstreamClient()
    metrics = GatewayMetrics(board, [t.key for t in routes.all_targets()])
    sinks: list[UsageSink] = [metrics, AccessLogSink()]  # one INFO line per call
    if usage_sink is not None:
        sinks.append(usage_sink)
    # Metering is on by default; a test that hands in its own sink gets it too only when it
    # configures a database (DATABASE_URL or metering.enabled), so test gateways stay off disk.
    metering = build_writer(config, custom_sink=usage_sink is not None)
    if metering is not None:
        sinks.append(metering)
    admission = _build_admission(config, metering, link)
    if metering is not None:
        writer = metering
        metrics.add_gauge("gateway_usage_queue_depth",
                          "Usage rows waiting in memory for the database.",
                          lambda: writer.queue_depth)
        metrics.add_gauge("gateway_usage_spooled_rows",
                          "Usage rows in the spool file, waiting for the database to return.",
                          lambda: writer.spooled_rows)
        metrics.add_gauge("gateway_usage_rejected_rows",
                          "Usage rows the database refused (kept in the spool's rejected file).",
                          lambda: writer.rows_rejected)
    sinks.append(admission)
    catalogue = ModelCatalogue(config)
    # Gateway keys live in the metering database; without one only the master key / loopback.
    key_store = KeyStore(metering.store) if metering is not None else None
    auth = KeyAuthenticator(
        config.master_key.get_secret_value() if config.master_key else None,
        key_store, link,
    )
    usage = PricingSink(price_book(config), FanOutSink(sinks))
    tracing = Tracing.from_env()  # None unless OTEL_EXPORTER_OTLP_ENDPOINT is set
    dispatcher = Dispatcher(failover, Attempter(client, tracing))
    anthropic = AnthropicMessages.from_config(config, catalogue)
    ollama_chat, ollama_generate = ollama_surfaces(config.ollama_api, catalogue,
                                                   routes.servable_models())
    # Stored responses live in the metering database; without one they are not stored.
    responses = OpenAIResponses.from_config(
        config, catalogue, metering.store if metering is not None else None)
    surfaces: list[Surface] = [OpenAIChat(catalogue), anthropic, ollama_chat, ollama_generate,
                               responses]
    state = GatewayState(
        config=config,
        catalogue=catalogue,
        routes=routes,
        client=client,
        metrics=metrics,
        admission=admission,
        board=board,
        shared_health=shared,
        auth=auth,
        keys=KeyManager(key_store, catalogue, auth.announce) if key_store is not None else None,
        surfaces=[anthropic],
    )

    drain = Drain(config.shutdown.drain_seconds, cut_grace=config.shutdown.cut_grace,
                  retry_after=config.shutdown.retry_after)
    metrics.count_in_flight(lambda: drain.in_flight)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await client.start()
        if shared is not None:
            await shared.start()
        if metering is not None:
            await metering.start()
        await auth.start()
        admission.start()
        await responses.start()
        _announce(state)
        if tune_gc:
            freeze_after_startup()
        give_back_signals = take_shutdown_signals(drain)  # the drain runs before uvicorn's
        try:
            yield
        finally:
            give_back_signals()
            await auth.close()
            if shared is not None:
                await shared.close()
            await client.close()
            await admission.close()
            await responses.close()  # its pending writes, before the database closes
            if metering is not None:  # last: requests finishing during shutdown are metered
                await metering.close()
            if tracing is not None:
                tracing.shutdown()  # the spans still batched

    app = FastAPI(title="Switchyard", version="0.1.0", lifespan=lifespan, docs_url=None,
                  redoc_url=None)
    app.state.gateway = state
    app.state.metering = metering  # MeteringWriter | None: queue_depth, spooled_rows
    app.state.drain = drain
    new_id = RequestIds()
    pipelines = [
        Pipeline(surface, auth=auth, max_body_bytes=config.max_body_bytes, admission=admission,
                 dispatcher=dispatcher, sink=usage, new_id=new_id, drain=drain,
                 tracing=tracing)
        for surface in surfaces
    ]
    for pipeline in pipelines:  # POST never reaches FastAPI; other methods get a 405
        for path in pipeline.paths:
            app.router.add_route(path, _post_only, methods=["GET", "PUT", "PATCH", "DELETE"])
    document_chat_route(app, OpenAIChat.paths, state.catalogue.names())
    app.router.add_route("/v1/models", list_models, methods=["GET"])
    app.router.add_route("/models", list_models, methods=["GET"])
    app.router.add_route("/healthz", ops.healthz, methods=["GET"])
    app.router.add_route("/metrics", ops.metrics, methods=["GET"])
    app.router.add_route("/readyz", ops.readyz, methods=["GET"])
    app.router.add_route("/ui", ui.page, methods=["GET"])
    app.router.add_route("/ui/login", ui.login, methods=["POST"])
    for path, endpoint, method in admin.ROUTES:
        app.router.add_route(path, endpoint, methods=[method])
    for path, endpoint, method in responses.routes:  # stored responses: GET, DELETE
        app.router.add_route(path, endpoint, methods=[method])
    _install_error_handlers(app)
    app.add_middleware(RequestIdMiddleware)  # outermost: refusals carry x-request-id too
    gateway = GatewayApp(app, pipelines, drain)
    gateway.connection_guard = ConnectionGuard(config.connections.header_timeout,
                                               config.connections.max_connections)
    if config.cors_origins:
        gateway.allow_cors(config.cors_origins)
    return gateway


def _redis_link(config: GatewayConfig) -> RedisLink | None:
    settings = config.redis
    return (RedisLink(config.redis_url, timeout=settings.timeout,
                      probe_interval=settings.probe_interval, replicas=settings.replicas,
                      request_timeout=settings.request_timeout)
            if config.redis_url else None)


def _build_admission(config: GatewayConfig, metering: MeteringWriter | None,
                     link: RedisLink | None) -> Admission:
    """Rate limits and budgets, shared through Redis when configured. Budgets start each
    period from the spend the usage table already holds."""

    async def recorded_spend(subject: str, since: datetime) -> float:
        if metering is None:
            return 0.0
        try:
            return await metering.store.spend_since(subject, since)
        except Exception as exc:  # database down: the tracker counts on without a seed
            log.warning("cannot read recorded spend for %s (%s); counting this process's "
                        "charges until it can", subject, type(exc).__name__)
            raise SpendUnknown(subject) from exc

    return Admission(RateLimiter(link), BudgetTracker(link, recorded_spend), link)


async def _post_only(request: Request) -> Response:
    raise InvalidRequest(f"Method {request.method} is not allowed on {request.url.path}",
                         status=405, code="method_not_allowed")


def app_from_env() -> GatewayApp:
    """Factory for `uvicorn --factory` and multi-worker serving: config path from the env."""
    from gateway import logs
    from gateway.workers import SUPERVISOR_ENV, die_with_parent

    logs.configure_from_env()  # a spawned worker: the log setup `gateway serve` was given
    supervisor = os.environ.get(SUPERVISOR_ENV)
    if supervisor:
        die_with_parent(int(supervisor))
    path = os.environ.get(CONFIG_FILE_ENV)
    return create_app(load_config(Path(path) if path else None), tune_gc=True)


def _install_error_handlers(app: FastAPI) -> None:
    async def gateway_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, GatewayError)
        return Response(error_json(exc), status_code=exc.status, headers=exc.headers,
                        media_type="application/json")

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        if exc.status_code == 404:
            err: GatewayError = NotFound(f"Unknown path {request.url.path}")
        elif exc.status_code == 405:
            err = InvalidRequest(f"Method {request.method} is not allowed on {request.url.path}",
                                 status=405, code="method_not_allowed")
        else:
            err = InvalidRequest(str(exc.detail), status=exc.status_code)
        return await gateway_error(request, err)

    async def validation_error(request: Request, exc: Exception) -> Response:
        return await gateway_error(request, InvalidRequest(f"Invalid request: {exc}"))

    async def unexpected_error(request: Request, exc: Exception) -> Response:
        request_id = request.scope.get("state", {}).get("request_id", "")
        log.exception("unhandled error in request %s", request_id)
        body = GatewayError(
            f"The gateway hit an internal error (request id {request_id}).",
            code="internal_error",
        )
        return json_response(error_object(body), status=500)

    app.add_exception_handler(GatewayError, gateway_error)
    app.add_exception_handler(HTTPException, http_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(Exception, unexpected_error)


def _announce(state: GatewayState) -> None:
    usable = state.config.usable_providers()
    if usable:
        log.info("serving through providers: %s", ", ".join(usable))
    else:
        log.warning(
            "no provider has an API key: set DEEPSEEK_API_KEY, OPENROUTER_API_KEY or "
            "OLLAMA_API_KEY (or api_key in the config file); chat requests will get 503"
        )
    if state.auth.loopback_only:
        log.warning(
            "GATEWAY_MASTER_KEY is not set: only clients on loopback (127.0.0.1, ::1) and "
            "gateway keys are accepted"
        )
    if not state.auth.keys_enabled:
        log.info("gateway keys are off (they need the metering database)")
