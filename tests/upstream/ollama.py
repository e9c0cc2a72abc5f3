"""Simulated Ollama Cloud (https://ollama.com) direct API as described in PROVIDERS.md."""

from __future__ import annotations

import random
import time
from datetime import UTC, datetime
from typing import Any

import orjson
from aiohttp import web

from .common import (
    JSON,
    Choice,
    Completion,
    Event,
    RequestError,
    SimulatedProvider,
    bearer_token,
    chunk_payloads,
    is_invalid,
    json_response,
    openai_choices,
    request_body,
    sse,
    word_pieces,
)

# Names of the direct API (/api/tags): deepseek-v4-flash is V4, deepseek-v4.1-flash is V4.1.
MODELS = ("deepseek-v4-flash", "deepseek-v4.1-flash", "deepseek-v4-pro")
EFFORTS = ("high", "medium", "low", "none")
V41_EFFORTS = (*EFFORTS, "max")  # DeepSeek V4.1 reportedly takes max too
NATIVE_THINK = (True, False, "low", "medium", "high")
MIDSTREAM_ERROR = "an error was encountered while running the model"
FINGERPRINT = "fp_ollama"

MESSAGES: dict[int, str] = {
    400: "invalid request",
    401: "unauthorized",
    404: "not found",
    402: "this model uses extra usage only, and your extra usage balance is empty",
    429: "you (user) have reached your session usage limit, upgrade for higher limits: "
         "https://ollama.com/upgrade",
    500: "internal server error",
    502: "cloud model cannot be reached",
    503: "Server overloaded, please retry shortly",
}


class SimulatedOllama(SimulatedProvider):
    """Ollama Cloud: string errors, message.reasoning, all parallel tool calls at index 0."""

    name = "ollama"

    def __init__(
        self, key: str = "ollama-test", port: int = 0, accept_cloud_suffix: bool = False
    ) -> None:
        super().__init__(key, port)
        self.accept_cloud_suffix = accept_cloud_suffix

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_get("/v1/models", self._v1_models)
        app.router.add_post("/api/chat", self._native_chat)
        app.router.add_get("/api/tags", self._tags)

    def error_response(
        self, status: int, message: str | None = None, headers: dict[str, str] | None = None
    ) -> web.Response:
        text = message or MESSAGES.get(status, "error")
        if status in (402, 429) and "usage" in text:
            headers = None  # a usage limit says nothing of when it ends: no Retry-After
        return json_response({"error": text}, status=status, headers=headers)

    # ---- shared checks

    def _auth_error(self, request: web.Request) -> web.Response | None:
        if bearer_token(request) == self.key:
            return None
        return self.error_response(401, "unauthorized")

    def _validate(self, body: Any) -> JSON:
        if body is None or is_invalid(body) or not isinstance(body, dict):
            raise RequestError(400, "invalid character looking for beginning of value")
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise RequestError(400, "messages are required")
        model = body.get("model")
        if model not in self._models():
            raise RequestError(404, f'model "{model}" not found, try pulling it first')
        return body

    def _models(self) -> tuple[str, ...]:
        if self.accept_cloud_suffix:
            return MODELS + tuple(m + ":cloud" for m in MODELS)
        return MODELS

    async def _tags(self, request: web.Request) -> web.Response:
        now = datetime.now(UTC).isoformat()
        models = [{"name": m, "model": m, "modified_at": now, "size": 0,
                   "digest": f"sha256:{i:064x}",
                   "details": {"family": "deepseek", "parameter_size": "284B"}}
                  for i, m in enumerate(MODELS)]
        return json_response({"models": models})

    async def _v1_models(self, request: web.Request) -> web.Response:
        if (err := self._auth_error(request)) is not None:
            return err
        data = [{"id": m, "object": "model", "created": 0, "owned_by": "library"}
                for m in MODELS]
        return json_response({"object": "list", "data": data})

    # ---- OpenAI-compatible /v1

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        if (err := self._auth_error(request)) is not None:
            return err
        try:
            body = self._validate(request_body(request))
            thinking = v1_thinking(body)
        except RequestError as exc:
            return self.error_response(exc.status, exc.message)
        completion = self.new_completion(
            body, thinking, id_prefix=f"chatcmpl-{random.randint(1, 999)}-"
        )
        if body.get("stream"):
            include = bool((body.get("stream_options") or {}).get("include_usage"))
            return await self._stream(request, completion, include)
        return json_response({
            "id": completion.id,
            "object": "chat.completion",
            "created": completion.created,
            "model": completion.model,
            "system_fingerprint": FINGERPRINT,
            "choices": openai_choices(completion, "reasoning"),
            "usage": usage(completion),
        })

    async def _stream(
        self, request: web.Request, completion: Completion, include_usage: bool
    ) -> web.StreamResponse:
        envelope = {"id": completion.id, "object": "chat.completion.chunk",
                    "created": completion.created, "model": completion.model,
                    "system_fingerprint": FINGERPRINT}
        payloads = chunk_payloads(completion, envelope, "reasoning", tool_index=lambda _k: 0)
        if include_usage:
            payloads.append({**envelope, "choices": [], "usage": usage(completion)})
        events = [sse(p) for p in payloads] + [sse("[DONE]")]

        def error_events() -> list[Event]:
            return [sse({"error": MIDSTREAM_ERROR})]

        resp = await self.open_stream(request)
        return await self.write_stream(request, resp, events, error_events)

    # ---- native /api/chat

    async def _native_chat(self, request: web.Request) -> web.StreamResponse:
        if (err := self._auth_error(request)) is not None:
            return err
        try:
            body = self._validate(request_body(request))
            thinking = native_thinking(body)
        except RequestError as exc:
            return self.error_response(exc.status, exc.message)
        started = time.perf_counter_ns()
        completion = self.new_completion(native_as_openai(body), thinking)
        choice = completion.choices[0]
        if body.get("stream", True) is False:
            message = native_message(choice, choice.content or "", choice.reasoning)
            line = {**native_line(completion.model, message, done=True),
                    **native_stats(completion, started)}
            return json_response(line)
        lines = native_stream_lines(completion, started)
        events = [Event(orjson.dumps(line) + b"\n") for line in lines]

        def error_events() -> list[Event]:
            return [Event(orjson.dumps({"error": MIDSTREAM_ERROR}) + b"\n")]

        resp = await self.open_stream(request, content_type="application/x-ndjson")
        return await self.write_stream(request, resp, events, error_events)


# --------------------------------------------------------------------------- helpers


def v1_thinking(body: JSON) -> bool:
    """On unless reasoning_effort is "none"; `thinking`/`reasoning` objects are ignored."""
    effort = body.get("reasoning_effort")
    if effort is None:
        return True
    allowed = V41_EFFORTS if str(body.get("model")).startswith("deepseek-v4.1") else EFFORTS
    if effort not in allowed:
        raise RequestError(400, f"invalid reasoning_effort {effort!r}, "
                                f"must be one of {', '.join(allowed)}")
    return bool(effort != "none")


def native_thinking(body: JSON) -> bool:
    think = body.get("think", True)
    if think not in NATIVE_THINK:
        raise RequestError(400, f"invalid think value {think!r}")
    return think is not False


def native_as_openai(body: JSON) -> JSON:
    """Map native options onto the OpenAI fields the content planner understands."""
    options = body.get("options") or {}
    mapped = {**body, "n": 1, "stream": False}
    if "num_predict" in options:
        mapped["max_tokens"] = options["num_predict"]
    if "stop" in options:
        mapped["stop"] = options["stop"]
    if body.get("format") is not None:
        mapped["response_format"] = {"type": "json_object"}
    return mapped


def native_message(choice: Choice, content: str, thinking: str | None) -> JSON:
    message: JSON = {"role": "assistant", "content": content}
    if thinking:
        message["thinking"] = thinking
    if choice.tool_calls:
        message["tool_calls"] = [
            {"function": {"name": c.name, "arguments": orjson.loads(c.arguments)}}
            for c in choice.tool_calls
        ]
    return message


def native_line(model: str, message: JSON, done: bool) -> JSON:
    return {"model": model, "created_at": datetime.now(UTC).isoformat(),
            "message": message, "done": done}


def native_stats(completion: Completion, started_ns: int) -> JSON:
    total = max(1, time.perf_counter_ns() - started_ns)
    return {
        "done_reason": completion.choices[0].finish_reason,
        "total_duration": total,
        "load_duration": total // 10,
        "prompt_eval_count": completion.prompt_tokens,
        "prompt_eval_duration": total // 5,
        "eval_count": completion.completion_tokens,
        "eval_duration": total // 2,
    }


def native_stream_lines(completion: Completion, started_ns: int) -> list[JSON]:
    """NDJSON objects: thinking pieces, then content pieces, then done with stats."""
    choice = completion.choices[0]
    model = completion.model
    lines: list[JSON] = []
    for piece in word_pieces(choice.reasoning or ""):
        lines.append(native_line(model, {"role": "assistant", "content": "", "thinking": piece},
                                 done=False))
    if choice.tool_calls:
        lines.append(native_line(model, native_message(choice, "", None), done=False))
    for piece in word_pieces(choice.content or ""):
        lines.append(native_line(model, {"role": "assistant", "content": piece}, done=False))
    final = native_line(model, {"role": "assistant", "content": ""}, done=True)
    lines.append({**final, **native_stats(completion, started_ns)})
    return lines


def usage(completion: Completion) -> JSON:
    return {
        "prompt_tokens": completion.prompt_tokens,
        "completion_tokens": completion.completion_tokens,
        "total_tokens": completion.total_tokens,
    }
