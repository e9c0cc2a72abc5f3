"""Upstream adapters, one module per provider, chosen by the `kind` in config."""

from __future__ import annotations

from gateway.config import ProviderConfig
from gateway.providers.base import Provider
from gateway.providers.deepseek import DeepSeek
from gateway.providers.ollama import Ollama
from gateway.providers.openrouter import OpenRouter
from gateway.reasoning_memory import ReasoningMemory

ADAPTERS: dict[str, type[Provider]] = {
    cls.kind: cls for cls in (DeepSeek, OpenRouter, Ollama)
}


def build_provider(name: str, config: ProviderConfig, memory: ReasoningMemory) -> Provider:
    return ADAPTERS[config.kind](name, config, memory)


__all__ = ["ADAPTERS", "DeepSeek", "Ollama", "OpenRouter", "Provider", "build_provider"]
