import pytest

from gateway.config import load_config
from gateway.providers import Provider, build_provider
from gateway.reasoning_memory import ReasoningMemory

KEYS = {"DEEPSEEK_API_KEY": "sk-ds-secret", "OPENROUTER_API_KEY": "sk-or-secret",
        "OLLAMA_API_KEY": "ollama-secret"}


@pytest.fixture
def providers() -> dict[str, Provider]:
    config = load_config(env=KEYS)
    memory = ReasoningMemory()
    return {name: build_provider(name, cfg, memory) for name, cfg in config.providers.items()}
