"""Claude names onto the catalogue, and the model list in Anthropic's shape."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import orjson
import pytest

from gateway.config import ConfigError, load_config
from gateway.errors import ModelNotFound
from gateway.models import ModelCatalogue
from gateway.surfaces.anthropic_messages.models import ClaudeModels, anthropic_model_list
from gateway.surfaces.anthropic_messages.signatures import ThinkingSigner
from gateway.surfaces.anthropic_messages.surface import AnthropicMessages
from gateway.surfaces.anthropic_messages.tokens import HeuristicCounter
from tests.surfaces.anthropic_messages.support import CATALOGUE, MODELS


@pytest.mark.parametrize(("name", "canonical", "thinking"), [
    ("claude-opus-4-1-20250805", "deepseek-v4-pro", True),
    ("claude-opus-4-6", "deepseek-v4-pro", True),
    ("claude-sonnet-4-5-20250929", "deepseek-v4-flash", True),
    ("claude-3-5-haiku-20241022", "deepseek-v4-flash", True),
    ("Claude-Opus-4", "deepseek-v4-pro", True),
    ("deepseek-v4-pro", "deepseek-v4-pro", True),
    ("deepseek-chat", "deepseek-v4-flash", False),
])
def test_resolve(name: str, canonical: str, thinking: bool) -> None:
    resolved = MODELS.resolve(name, CATALOGUE)
    assert (resolved.canonical, resolved.default_thinking) == (canonical, thinking)


def test_the_longest_prefix_wins_whatever_the_order() -> None:
    models = ClaudeModels({"claude": "deepseek-v4-flash", "claude-opus": "deepseek-v4-pro",
                           "claude-opus-4-1": "deepseek-chat"})
    assert models.resolve("claude-opus-4-1-x", CATALOGUE).default_thinking is False
    assert models.resolve("claude-opus-4", CATALOGUE).canonical == "deepseek-v4-pro"
    assert models.resolve("claude-haiku", CATALOGUE).canonical == "deepseek-v4-flash"


def test_a_catalogue_name_beats_a_prefix() -> None:
    models = ClaudeModels({"deepseek": "deepseek-v4-pro"})
    assert models.resolve("deepseek-v4-flash", CATALOGUE).canonical == "deepseek-v4-flash"
    assert models.resolve("deepseek-v9", CATALOGUE).canonical == "deepseek-v4-pro"


def test_unknown_names_are_not_found() -> None:
    for name in ("gpt-4o", "claud", ""):
        with pytest.raises(ModelNotFound):
            MODELS.resolve(name, CATALOGUE)
    with pytest.raises(ModelNotFound):
        ClaudeModels({}).resolve("claude-opus-4", CATALOGUE)


def test_check_refuses_targets_outside_the_catalogue() -> None:
    MODELS.check(CATALOGUE)
    ClaudeModels({"claude": "deepseek-chat"}).check(CATALOGUE)  # an alias is a catalogue name
    with pytest.raises(ConfigError, match=r"anthropic\.models\.claude-opus"):
        ClaudeModels({"claude-opus": "gpt-5"}).check(CATALOGUE)


def test_model_list_shape() -> None:
    page = orjson.loads(anthropic_model_list(["deepseek-v4-flash", "deepseek-v4-pro"]))
    assert [m["id"] for m in page["data"]] == ["deepseek-v4-flash", "deepseek-v4-pro"]
    for model in page["data"]:
        assert set(model) == {"type", "id", "display_name", "created_at"}
        assert model["type"] == "model" and model["display_name"] == model["id"]
        assert datetime.fromisoformat(model["created_at"]).tzinfo is not None
    assert page["has_more"] is False
    assert (page["first_id"], page["last_id"]) == ("deepseek-v4-flash", "deepseek-v4-pro")
    empty = orjson.loads(anthropic_model_list([]))
    assert empty == {"data": [], "has_more": False, "first_id": None, "last_id": None}


def test_the_surface_refuses_a_prefix_map_naming_unknown_models(tmp_path: Path) -> None:
    path = tmp_path / "gateway.yaml"
    path.write_text("anthropic:\n  models: {claude: gpt-5}\n")
    config = load_config(path, env={})
    with pytest.raises(ConfigError, match=r"anthropic\.models\.claude"):
        AnthropicMessages.from_config(config, ModelCatalogue(config),
                                      counter=HeuristicCounter())


def test_the_surface_signs_with_the_configured_secret(tmp_path: Path) -> None:
    path = tmp_path / "gateway.yaml"
    path.write_text("anthropic:\n  signing_secret: shared-1\n")
    config = load_config(path, env={"GATEWAY_MASTER_KEY": "sk-m"})
    surface = AnthropicMessages.from_config(config, ModelCatalogue(config),
                                            counter=HeuristicCounter())
    thought = "signed by the configured secret"
    raw = orjson.dumps({"model": "claude-x", "max_tokens": 5, "messages": [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": [
            {"type": "thinking", "thinking": thought,
             "signature": ThinkingSigner(b"shared-1").sign(thought)}]},
        {"role": "user", "content": "again"}]})
    assert surface.parse(raw).messages[1].get("reasoning_content") == thought
