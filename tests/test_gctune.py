"""`gateway serve` freezes its start-up objects out of the garbage collector; apps a test builds
leave the interpreter's collector alone (gateway/gctune.py)."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.app import GatewayApp, create_app
from gateway.config import load_config
from gateway.gctune import GEN0_THRESHOLD


@pytest.fixture
def restore_gc() -> Iterator[None]:
    threshold = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)


def _collector_after_startup(app: GatewayApp) -> tuple[int, int]:
    async def start_and_stop() -> tuple[int, int]:
        async with app.api.router.lifespan_context(app.api):
            return gc.get_freeze_count(), gc.get_threshold()[0]

    return asyncio.run(start_and_stop())


def _app(tmp_path: Path, tune_gc: bool) -> GatewayApp:
    path = tmp_path / "gateway.yaml"
    path.write_text("metering: {enabled: false}\n")
    return create_app(load_config(path, env={"DEEPSEEK_API_KEY": "k"}), tune_gc=tune_gc)


def test_a_serving_app_freezes_what_start_up_built(tmp_path: Path, restore_gc: None) -> None:
    frozen, gen0 = _collector_after_startup(_app(tmp_path, tune_gc=True))
    assert frozen > 10_000  # the modules, config and routes: tens of thousands of objects
    assert gen0 == GEN0_THRESHOLD


def test_a_test_app_leaves_the_collector_alone(tmp_path: Path, restore_gc: None) -> None:
    gc.unfreeze()
    frozen, gen0 = _collector_after_startup(_app(tmp_path, tune_gc=False))
    assert (frozen, gen0) == (0, gc.get_threshold()[0])
    assert gen0 != GEN0_THRESHOLD
