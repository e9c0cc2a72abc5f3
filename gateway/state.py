"""Everything a request handler needs, built once per app by the factory."""

from __future__ import annotations

from dataclasses import dataclass

from gateway.auth import KeyAuthenticator
from gateway.config import GatewayConfig
from gateway.keys.manager import KeyManager
from gateway.limits.admission import Admission
from gateway.metrics import GatewayMetrics
from gateway.models import ModelCatalogue
from gateway.proxy import ChatProxy
from gateway.routing.health import HealthBoard
from gateway.routing.policy import RouteTable
from gateway.routing.shared import SharedHealth
from gateway.upstream import UpstreamClient


@dataclass(slots=True)
class GatewayState:
    config: GatewayConfig
    catalogue: ModelCatalogue
    routes: RouteTable
    client: UpstreamClient
    proxy: ChatProxy
    metrics: GatewayMetrics
    admission: Admission
    auth: KeyAuthenticator
    board: HealthBoard
    shared_health: SharedHealth | None
    keys: KeyManager | None = None  # None: no database (metering off), so no gateway keys
