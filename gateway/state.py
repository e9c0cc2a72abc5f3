"""Everything a request handler needs, built once per app by the factory."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from gateway.auth import KeyAuthenticator
from gateway.config import GatewayConfig
from gateway.keys.manager import KeyManager
from gateway.limits.admission import Admission
from gateway.metrics import GatewayMetrics
from gateway.models import ModelCatalogue
from gateway.routing.health import HealthBoard
from gateway.routing.policy import RouteTable
from gateway.routing.shared import SharedHealth
from gateway.upstream import UpstreamClient


class ModelListing(Protocol):
    def model_listing(self, headers: Mapping[str, str], names: list[str]) -> bytes | None:
        """`/v1/models` in this API's shape if the request is this API's, else None."""
        ...


@dataclass(slots=True)
class GatewayState:
    config: GatewayConfig
    catalogue: ModelCatalogue
    routes: RouteTable
    client: UpstreamClient
    metrics: GatewayMetrics
    admission: Admission
    auth: KeyAuthenticator
    board: HealthBoard
    shared_health: SharedHealth | None
    keys: KeyManager | None = None  # None: no database (metering off), so no gateway keys
    surfaces: list[ModelListing] = field(default_factory=list)  # whose /v1/models shape differs
