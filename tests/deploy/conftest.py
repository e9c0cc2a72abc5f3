"""Deployment tests reuse the end-to-end fixtures: simulated providers and real gateways."""

from tests.e2e.conftest import _fresh_upstreams, make_gateway, upstreams

__all__ = ["_fresh_upstreams", "make_gateway", "upstreams"]
