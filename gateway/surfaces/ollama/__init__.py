"""Ollama's own API: `/api/chat`, `/api/generate` and the model endpoints Ollama clients call."""
