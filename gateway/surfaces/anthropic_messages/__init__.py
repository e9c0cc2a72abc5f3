"""Anthropic Messages: `/v1/messages` (and `count_tokens`, `GET /v1/models` in Anthropic's
shape), the API of the anthropic SDKs and Claude Code, served by the DeepSeek models."""
