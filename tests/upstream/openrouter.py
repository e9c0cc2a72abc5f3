"""Simulated OpenRouter (https://openrouter.ai/api/v1) as described in PROVIDERS.md."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from .common import (
    JSON,
    Completion,
    Event,
    RequestError,
    SimulatedProvider,
    bearer_token,
    chunk_payloads,
    comment,
    is_invalid,
    json_response,
    openai_choices,
    request_body,
    sse,
)

# deepseek/deepseek-v4-flash is still the older, text-only V4; V4.1 has its own ids.
BASE_MODELS = ("deepseek/deepseek-v4-flash", "deepseek/deepseek-v4.1-flash",
               "deepseek/deepseek-v4.1-flash-1017", "deepseek/deepseek-v4-pro")
MODELS = BASE_MODELS + tuple(m + ":free" for m in BASE_MODELS)
EFFORTS = ("none", "minimal", "low", "medium", "high", "xhigh")
# USD per token, used for usage.cost: cache-miss prompt, cache-hit prompt, completion.
PRICE_PROMPT = 0.14 / 1e6
PRICE_CACHED = 0.028 / 1e6
PRICE_COMPLETION = 0.28 / 1e6
PROVIDER_NAME = "DeepSeek"

# status -> default message
MESSAGES: dict[int, str] = {
    400: "Bad Request",
    401: "User not found.",
    402: "Insufficient credits. Add more using https://openrouter.ai/settings/credits",
    403: "Your chosen model requires moderation and your input was flagged",
    408: "Request timed out",
    429: "Rate limit exceeded: too many requests, please retry later",
    500: "Internal Server Error",
    502: "Provider returned error",
    503: "No endpoints found that can handle the requested parameters.",
}


class SimulatedOpenRouter(SimulatedProvider):
    """OpenRouter: `reasoning` object, message.reasoning(+_details), usage with cost always."""

    name = "openrouter"
    api_prefix = "/api/v1"

    def __init__(self, key: str = "sk-or-test", port: int = 0) -> None:
        super().__init__(key, port)

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post(self.api_prefix + "/chat/completions", self._chat)
        app.router.add_get(self.api_prefix + "/models", self._models)

    def error_response(
        self, status: int, message: str | None = None, headers: dict[str, str] | None = None
    ) -> web.Response:
        error: JSON = {"code": status, "message": message or MESSAGES.get(status, "Error")}
        metadata = error_metadata(status)
        if metadata:
            error["metadata"] = metadata
        return json_response({"error": error}, status=status, headers=headers)

    # ---- endpoints

    def _auth_error(self, request: web.Request) -> web.Response | None:
        token = bearer_token(request)
        if token == self.key:
            return None
        return self.error_response(401, "No auth credentials found" if token is None else None)

    async def _models(self, request: web.Request) -> web.Response:
        pricing = {"prompt": f"{PRICE_PROMPT:.10f}", "completion": f"{PRICE_COMPLETION:.10f}"}
        data = [{"id": m, "name": m, "context_length": 1_000_000, "pricing": pricing}
                for m in MODELS]
        return json_response({"data": data})

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        if (err := self._auth_error(request)) is not None:
            return err
        try:
            body = validate(request_body(request))
            thinking, exclude = reasoning_mode(body)
        except RequestError as exc:
            return self.error_response(exc.status, exc.message)
        completion = self.new_completion(body, thinking, id_prefix="gen-")
        shown = "reasoning" if thinking and not exclude else None
        if body.get("stream"):
            return await self._stream(request, completion, shown)
        return json_response(self._response(completion, shown))

    # ---- output

    def _envelope(self, completion: Completion) -> JSON:
        return {"id": completion.id, "provider": PROVIDER_NAME, "model": completion.model,
                "object": "chat.completion.chunk", "created": completion.created}

    def _response(self, completion: Completion, reasoning_key: str | None) -> JSON:
        choices = openai_choices(completion, "reasoning")
        for choice in choices:
            message = choice["message"]
            if reasoning_key is None:
                message["reasoning"] = None
            elif message["reasoning"]:
                message["reasoning_details"] = [details(message["reasoning"])]
        return {
            "id": completion.id,
            "provider": PROVIDER_NAME,
            "model": completion.model,
            "object": "chat.completion",
            "created": completion.created,
            "choices": choices,
            "usage": usage(completion),
        }

    async def _stream(
        self, request: web.Request, completion: Completion, reasoning_key: str | None
    ) -> web.StreamResponse:
        envelope = self._envelope(completion)
        payloads = chunk_payloads(completion, envelope, reasoning_key)
        for payload in payloads:
            delta = payload["choices"][0]["delta"]
            if delta.get("reasoning"):
                delta["reasoning_details"] = [details(delta["reasoning"])]
        payloads.append({**envelope, "choices": [], "usage": usage(completion)})
        events = [comment("OPENROUTER PROCESSING"), comment("OPENROUTER PROCESSING")]
        events += [sse(p) for p in payloads]
        events.append(sse("[DONE]"))

        def error_events() -> list[Event]:
            choice = {"index": 0, "delta": {"content": ""}, "finish_reason": "error"}
            error = {"code": 502, "message": "Provider returned error"}
            return [sse({**envelope, "error": error, "choices": [choice]})]

        resp = await self.open_stream(request)
        return await self.write_stream(request, resp, events, error_events)

    # ---- test helpers

    def assistant_reasonings(self) -> list[str | None]:
        """`reasoning` of every assistant message the gateway sent back, in order."""
        with self._lock:
            bodies = [r.json for r in self.requests if isinstance(r.json, dict)]
        return [
            m.get("reasoning")
            for body in bodies
            for m in body.get("messages") or []
            if isinstance(m, dict) and m.get("role") == "assistant"
        ]


# --------------------------------------------------------------------------- helpers


def validate(body: Any) -> JSON:
    if body is None or is_invalid(body) or not isinstance(body, dict):
        raise RequestError(400, "Invalid JSON body")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise RequestError(400, 'Input required: specify "prompt" or "messages"')
    model = body.get("model")
    if model not in MODELS:
        raise RequestError(400, f"{model} is not a valid model ID")
    return body


def reasoning_mode(body: JSON) -> tuple[bool, bool]:
    """(thinking on, reasoning excluded from output) from the `reasoning` object."""
    reasoning = body.get("reasoning")
    if reasoning is None:
        return True, False
    if not isinstance(reasoning, dict):
        raise RequestError(400, "reasoning must be an object")
    effort = reasoning.get("effort")
    if effort is not None and effort not in EFFORTS:
        raise RequestError(400, f"Invalid reasoning.effort: {effort!r}")
    if effort is not None and reasoning.get("max_tokens") is not None:
        raise RequestError(
            400, 'Only one of "reasoning.effort" and "reasoning.max_tokens" can be specified'
        )
    on = reasoning.get("enabled", True) is not False and effort != "none"
    return on, bool(reasoning.get("exclude"))


def details(text: str) -> JSON:
    return {"type": "reasoning.text", "text": text, "format": "unknown", "index": 0}


def cost(completion: Completion) -> float:
    cached = completion.cached_tokens
    return (
        (completion.prompt_tokens - cached) * PRICE_PROMPT
        + cached * PRICE_CACHED
        + completion.completion_tokens * PRICE_COMPLETION
    )


def usage(completion: Completion) -> JSON:
    return {
        "prompt_tokens": completion.prompt_tokens,
        "completion_tokens": completion.completion_tokens,
        "total_tokens": completion.total_tokens,
        "cost": cost(completion),
        "is_byok": False,
        "prompt_tokens_details": {"cached_tokens": completion.cached_tokens},
        "completion_tokens_details": {"reasoning_tokens": completion.reasoning_tokens},
    }


def error_metadata(status: int) -> JSON | None:
    """Extra detail OpenRouter attaches to some errors."""
    if status == 403:
        return {"reasons": ["simulated"], "flagged_input": "...",
                "provider_name": PROVIDER_NAME, "model_slug": BASE_MODELS[0]}
    if status == 502:
        return {"provider_name": PROVIDER_NAME, "raw": "upstream error"}
    return None
