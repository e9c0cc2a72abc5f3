"""Simulated DeepSeek API (https://api.deepseek.com) as described in PROVIDERS.md."""

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
    mask_key,
    openai_choices,
    request_body,
    sse,
)

# `deepseek-flash` is V4.1-Flash; `deepseek-v4-flash` a temporary compatibility route to it.
MODELS = ("deepseek-v4-flash", "deepseek-v4-pro", "deepseek-flash")
LISTED = ("deepseek-flash", "deepseek-v4-pro")  # what GET /models lists
RETIRED = ("deepseek-chat", "deepseek-reasoner")  # inaccessible since 2026-07-24 15:59 UTC
RETIRED_MESSAGE = ("The supported API model names are deepseek-v4-pro or deepseek-v4-flash, "
                   "but you passed {model}")
MAX_OUTPUT = 393_216
MAX_TOKENS_MESSAGE = (f"Invalid max_tokens value, the valid range of max_tokens is "
                      f"[1, {MAX_OUTPUT}]")
EFFORTS = {"low": "low", "high": "high", "max": "max", "minimal": "low", "medium": "high",
           "xhigh": "high", "ultra": "max"}
KEEPALIVE_EVERY = 4
FINGERPRINT = "fp_sim_deepseek"
MISSING_REASONING = (
    "Missing `reasoning_content` field in the assistant message at message index {index}. "
    "For more information, please refer to "
    "https://api-docs.deepseek.com/guides/thinking_mode#tool-calls"
)

# status -> (default message, error type)
ERRORS: dict[int, tuple[str, str]] = {
    400: ("Invalid request", "invalid_request_error"),
    401: ("Authentication Fails, Your api key: ****xxxx is invalid", "authentication_error"),
    402: ("Insufficient Balance", "unknown_error"),
    422: ("Invalid parameters", "invalid_request_error"),
    429: ("Rate Limit Reached", "rate_limit_error"),
    500: ("Internal Server Error", "server_error"),
    503: ("Server overloaded, please try again later.", "server_error"),
}


class SimulatedDeepSeek(SimulatedProvider):
    """DeepSeek: reasoning_content, hit/miss cache usage, keep-alive comments, 'thinking'."""

    name = "deepseek"

    def __init__(self, key: str = "sk-test-deepseek", port: int = 0) -> None:
        super().__init__(key, port)

    def add_routes(self, app: web.Application) -> None:
        for prefix in ("", "/v1"):
            app.router.add_post(prefix + "/chat/completions", self._chat)
            app.router.add_get(prefix + "/models", self._models)
        app.router.add_get("/user/balance", self._balance)

    def error_response(
        self, status: int, message: str | None = None, headers: dict[str, str] | None = None
    ) -> web.Response:
        default, etype = ERRORS.get(status, ("Unknown error", "unknown_error"))
        error = {"message": message or default, "type": etype, "param": None,
                 "code": "invalid_request_error"}
        return json_response({"error": error}, status=status, headers=headers)

    # ---- endpoints

    def _auth_error(self, request: web.Request) -> web.Response | None:
        token = bearer_token(request)
        if token == self.key:
            return None
        msg = f"Authentication Fails, Your api key: {mask_key(token)} is invalid"
        return self.error_response(401, msg)

    async def _models(self, request: web.Request) -> web.Response:
        if (err := self._auth_error(request)) is not None:
            return err
        data = [{"id": m, "object": "model", "owned_by": "deepseek"} for m in LISTED]
        return json_response({"object": "list", "data": data})

    async def _balance(self, request: web.Request) -> web.Response:
        if (err := self._auth_error(request)) is not None:
            return err
        info = {"currency": "USD", "total_balance": "100.00", "granted_balance": "0.00",
                "topped_up_balance": "100.00"}
        return json_response({"is_available": True, "balance_infos": [info]})

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        if (err := self._auth_error(request)) is not None:
            return err
        try:
            body = validate(request_body(request))
            thinking = thinking_enabled(body)
        except RequestError as exc:
            return self.error_response(exc.status, exc.message)
        completion = self.new_completion(body, thinking)
        if body.get("stream"):
            return await self._stream(request, body, completion)
        return json_response(self._response(completion), prefix=b"\n\n")

    # ---- output

    def _envelope(self, completion: Completion) -> JSON:
        return {"id": completion.id, "object": "chat.completion.chunk",
                "created": completion.created, "model": completion.model,
                "system_fingerprint": FINGERPRINT}

    def _response(self, completion: Completion) -> JSON:
        return {
            "id": completion.id,
            "object": "chat.completion",
            "created": completion.created,
            "model": completion.model,
            "system_fingerprint": FINGERPRINT,
            "choices": openai_choices(completion, "reasoning_content"),
            "usage": usage(completion),
        }

    async def _stream(
        self, request: web.Request, body: JSON, completion: Completion
    ) -> web.StreamResponse:
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        envelope = self._envelope(completion)
        if include_usage:
            envelope["usage"] = None
        payloads = chunk_payloads(completion, envelope, "reasoning_content")
        if include_usage:
            payloads.append({**envelope, "choices": [], "usage": usage(completion)})
        events = with_keepalives([sse(p) for p in payloads])
        events.append(sse("[DONE]"))

        def error_events() -> list[Event]:
            choice = {"index": 0, "delta": {"content": ""}, "logprobs": None,
                      "finish_reason": "insufficient_system_resource"}
            return [sse({**envelope, "choices": [choice]}), sse("[DONE]")]

        resp = await self.open_stream(request)
        return await self.write_stream(request, resp, events, error_events)


# --------------------------------------------------------------------------- validation


def validate(body: Any) -> JSON:
    """Reject what DeepSeek rejects: bad JSON, no messages, unknown or retired models,
    max_tokens outside [1, 393216], reasoning_effort with thinking disabled."""
    if body is None or is_invalid(body) or not isinstance(body, dict):
        raise RequestError(400, "Failed to deserialize the JSON body into the target type")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise RequestError(422, "Failed to deserialize the JSON body into the target type: "
                                "missing field `messages`")
    model = body.get("model")
    if model in RETIRED:
        raise RequestError(400, RETIRED_MESSAGE.format(model=model))
    if model not in MODELS:
        raise RequestError(400, "Model Not Exist")
    for name in ("max_tokens", "max_completion_tokens"):
        limit = body.get(name)
        if isinstance(limit, int) and not 1 <= limit <= MAX_OUTPUT:
            raise RequestError(400, MAX_TOKENS_MESSAGE)
    effort = body.get("reasoning_effort")
    if effort is not None and effort not in EFFORTS:
        raise RequestError(400, f"Invalid reasoning_effort: {effort!r}; "
                                "expected one of low, high, max")
    thinking = body.get("thinking")
    if effort is not None and isinstance(thinking, dict) and thinking.get("type") == "disabled":
        raise RequestError(400, "reasoning_effort cannot be set when thinking is disabled")
    return body


def thinking_enabled(body: JSON) -> bool:
    """Thinking is on unless `thinking.type` is disabled; enforces reasoning_content echo."""
    thinking = body.get("thinking")
    kind: Any = "enabled"
    if thinking is not None:
        kind = thinking.get("type") if isinstance(thinking, dict) else None
        if kind not in ("enabled", "disabled"):
            raise RequestError(400, f"Invalid thinking type: {kind!r}")
    if kind == "disabled":
        return False
    for index, message in enumerate(body["messages"]):
        if message.get("role") == "assistant" and message.get("tool_calls") \
                and not isinstance(message.get("reasoning_content"), str):
            raise RequestError(400, MISSING_REASONING.format(index=index))
    return True


def effective_effort(body: JSON) -> str | None:
    """The effort DeepSeek actually applies after folding OpenAI-style names."""
    effort = body.get("reasoning_effort")
    return EFFORTS.get(effort) if isinstance(effort, str) else None


def usage(completion: Completion) -> JSON:
    hit = completion.cached_tokens
    return {
        "prompt_tokens": completion.prompt_tokens,
        "completion_tokens": completion.completion_tokens,
        "total_tokens": completion.total_tokens,
        "prompt_tokens_details": {"cached_tokens": hit},
        "completion_tokens_details": {"reasoning_tokens": completion.reasoning_tokens},
        "prompt_cache_hit_tokens": hit,
        "prompt_cache_miss_tokens": completion.prompt_tokens - hit,
    }


def with_keepalives(events: list[Event]) -> list[Event]:
    """Interleave `: keep-alive` comments the way DeepSeek does under load."""
    out = [comment("keep-alive")]
    for i, event in enumerate(events):
        if i and i % KEEPALIVE_EVERY == 0:
            out.append(comment("keep-alive"))
        out.append(event)
    return out
