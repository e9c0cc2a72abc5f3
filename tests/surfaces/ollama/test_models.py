"""The model endpoints: tags, show, ps, version, and the refused model management."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
import pytest

from gateway.config import OllamaApiConfig
from gateway.errors import InvalidRequest, ModelNotFound
from gateway.surfaces.ollama.models import CAPABILITIES, ModelDirectory, delete_refusal, refusals
from tests.surfaces.ollama.support import CATALOGUE

STARTED = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def _directory(servable: tuple[str, ...] = ("deepseek-v4-flash", "deepseek-v4-pro"),
               config: OllamaApiConfig | None = None) -> ModelDirectory:
    return ModelDirectory(CATALOGUE, servable, config or OllamaApiConfig(), STARTED)


def test_tags_list_every_accepted_name_of_a_servable_model() -> None:
    models = orjson.loads(_directory().tags(b""))["models"]
    names = [m["name"] for m in models]
    assert names == CATALOGUE.names()
    assert "deepseek-v4-flash:cloud" in names and "deepseek-v4-pro:cloud" in names
    cloud = next(m for m in models if m["name"] == "deepseek-v4-flash:cloud")
    assert cloud == {
        "name": "deepseek-v4-flash:cloud", "model": "deepseek-v4-flash:cloud",
        "remote_model": "deepseek-v4-flash", "modified_at": "2026-12-01T12:00:00.000000Z",
        "size": 0, "digest": cloud["digest"],
        "details": {"parent_model": "", "format": "", "family": "deepseek",
                    "families": ["deepseek"], "parameter_size": "", "quantization_level": ""},
    }
    assert len(cloud["digest"]) == 64 and len({m["digest"] for m in models}) == len(models)


def test_tags_leave_out_models_no_provider_serves() -> None:
    names = [m["name"] for m in orjson.loads(_directory(("deepseek-v4-pro",)).tags(b""))["models"]]
    assert names and all(CATALOGUE.resolve(n).canonical == "deepseek-v4-pro" for n in names)
    assert orjson.loads(_directory(()).tags(b"")) == {"models": []}


def test_show_gives_details_context_length_and_capabilities() -> None:
    out = orjson.loads(_directory().show(b'{"model": "deepseek-v4-pro:cloud"}'))
    assert out["capabilities"] == list(CAPABILITIES) == ["completion", "tools", "thinking"]
    assert out["model_info"] == {"general.architecture": "deepseek",
                                 "general.basename": "deepseek-v4-pro",
                                 "deepseek.context_length": 1_048_576}
    assert out["details"]["family"] == "deepseek"
    assert out["details"]["context_length"] == 1_048_576
    assert out["parameters"] == "num_ctx 1048576"
    assert out["remote_model"] == "deepseek-v4-pro"
    assert out["remote_host"] and not out["remote_host"].startswith("https://ollama.com")
    assert out["modified_at"] == "2026-12-01T12:00:00.000000Z"


def test_show_takes_the_older_name_field_and_the_latest_tag() -> None:
    config = OllamaApiConfig(context_length={}, default_context_length=4096)
    out = orjson.loads(_directory(config=config).show(b'{"name": "deepseek-v4-flash:latest"}'))
    assert out["remote_model"] == "deepseek-v4-flash"
    assert out["model_info"]["deepseek.context_length"] == 4096


def test_show_of_an_unknown_or_missing_model() -> None:
    with pytest.raises(ModelNotFound, match='model "llama3" not found'):
        _directory().show(b'{"model": "llama3"}')
    with pytest.raises(InvalidRequest, match="model is required"):
        _directory().show(b"{}")


def test_ps_shows_the_models_as_always_loaded() -> None:
    models = orjson.loads(_directory().ps(b""))["models"]
    assert [m["name"] for m in models] == CATALOGUE.names()
    flash = models[0]
    assert flash["context_length"] == 1_048_576
    assert flash["expires_at"].startswith("9999-")
    assert flash["size_vram"] == 0


def test_version_is_the_configured_one() -> None:
    assert orjson.loads(_directory().version(b"")) == {"version": OllamaApiConfig().version}
    config = OllamaApiConfig(version="0.99.0")
    assert orjson.loads(_directory(config=config).version(b"")) == {"version": "0.99.0"}


@pytest.mark.parametrize("path", ["/api/pull", "/api/push", "/api/create", "/api/copy"])
def test_model_management_is_refused_because_models_are_not_local(path: str) -> None:
    with pytest.raises(InvalidRequest, match="serves its models remotely") as caught:
        refusals()[path](b'{"model": "deepseek-v4-flash"}')
    assert caught.value.status == 400 and caught.value.code == "models_not_local"
    with pytest.raises(InvalidRequest, match="delete is not available"):
        delete_refusal()(b"")


def test_embeddings_are_refused() -> None:
    for path in ("/api/embed", "/api/embeddings"):
        with pytest.raises(InvalidRequest, match="chat models only"):
            refusals()[path](b"{}")
