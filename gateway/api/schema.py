"""The chat request as an OpenAPI schema, for documentation and schema-driven fuzzing only.

The hot path never validates through these models (gateway/surfaces/openai_chat/parse.py
checks what it relies on); they exist so `/openapi.json` describes
`POST /v1/chat/completions` truthfully.
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import FastAPI
from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import Response

from gateway.errors import GatewayError

Effort = Literal["none", "minimal", "low", "medium", "high", "xhigh", "max"]


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")

    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[dict[str, Any]] | None = None
    reasoning_content: str | None = None
    tool_calls: list[dict[str, Any]] | None = None
    tool_call_id: str | None = None


class StreamOptions(BaseModel):
    include_usage: bool | None = None


class Thinking(BaseModel):
    type: Literal["enabled", "disabled"]


class Reasoning(BaseModel):
    enabled: bool | None = None
    effort: Effort | None = None
    max_tokens: int | None = Field(default=None, ge=1)
    exclude: bool | None = None


class ChatCompletionRequest(BaseModel):
    """OpenAI's chat request, plus DeepSeek's `thinking` and OpenRouter's `reasoning`."""

    model_config = ConfigDict(extra="allow")

    model: str = Field(examples=["deepseek-v4-flash", "deepseek-chat"])
    messages: list[ChatMessage] = Field(min_length=1)
    stream: bool | None = None
    stream_options: StreamOptions | None = None
    thinking: Thinking | None = None
    reasoning: Reasoning | None = None
    reasoning_effort: Effort | None = None
    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None
    max_completion_tokens: int | None = None
    n: int | None = Field(default=None, ge=1, le=128)
    seed: int | None = None
    stop: str | list[str] | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    response_format: dict[str, Any] | None = None
    logprobs: bool | None = None
    top_logprobs: int | None = None
    user: str | None = None


def document_chat_route(app: FastAPI, paths: frozenset[str], models: list[str]) -> None:
    """Describe the chat endpoint in OpenAPI, with this deployment's model names. The
    gateway's ASGI entry point sends every POST to the hot-path endpoint first, so these routes
    only ever serve as documentation."""

    async def documented(request: Request) -> Response:  # pragma: no cover - unreachable
        raise GatewayError("documentation-only route", status=500)

    schema = ChatCompletionRequest.model_json_schema(ref_template="#/components/schemas/{model}")
    if models:
        schema["properties"]["model"]["enum"] = models
    for path in sorted(paths):
        app.add_api_route(
            path, documented, methods=["POST"], summary="Create a chat completion",
            include_in_schema=path.startswith("/v1"),
            openapi_extra={"requestBody": {
                "required": True,
                "content": {"application/json": {"schema": {
                    "$ref": "#/components/schemas/ChatCompletionRequest"}}},
            }},
        )
    original = app.openapi

    def openapi() -> dict[str, Any]:
        spec = original()
        components = spec.setdefault("components", {}).setdefault("schemas", {})
        for name, definition in schema.pop("$defs", {}).items():
            components[name] = definition
        components["ChatCompletionRequest"] = schema
        return spec

    app.openapi = openapi  # type: ignore[method-assign]
