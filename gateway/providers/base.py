"""The adapter contract, and the OpenAI-format translator every upstream shares.

All three upstreams speak OpenAI's chat format with their own accents. `Provider` holds *where
and how to authenticate* (base URL, key, headers, model names, timeouts: from config); its
subclasses in this package declare only *the accent*: how thinking is switched, what the
reasoning field is called, how usage and errors look. Everything else (history translation,
answer and chunk translation, tool-call index repair) is written once here.

A provider's answer always leaves this module as a canonical `Answer` (gateway/core/answer.py)
whose `native` form is in DeepSeek's dialect: reasoning in `reasoning_content`, usage with cache
hit/miss and reasoning tokens, `model` set to the public model name.
"""

from __future__ import annotations

import email.utils
import time
from typing import Any, ClassVar

import orjson
from multidict import CIMultiDict, CIMultiDictProxy

from gateway import __version__
from gateway.config import ProviderConfig, Timeouts
from gateway.core.answer import Answer, Choice, ToolCall
from gateway.core.call import Call
from gateway.errors import UpstreamError
from gateway.reasoning_memory import ReasoningMemory
from gateway.thinking import Thinking
from gateway.usage import Usage

REASONING_FIELDS = ("reasoning_content", "reasoning")
# What the gateway calls itself upstream; a provider's `headers` in config may override it.
USER_AGENT = f"switchyard/{__version__}"


class Provider:
    """One configured upstream. Subclasses set the class attributes and override the hooks."""

    kind: ClassVar[str] = ""
    chat_path: ClassVar[str] = "/chat/completions"
    # Name of the reasoning text field in this provider's messages and deltas.
    reasoning_field: ClassVar[str] = "reasoning_content"
    # Whether thinking-mode tool-call turns must carry their reasoning (DeepSeek answers 400).
    requires_reasoning_on_tool_turns: ClassVar[bool] = False
    # Parameters a surface may set that this provider has no equivalent for and that are
    # dropped rather than sent (see `Call.params`); OpenAI-format fields are never dropped.
    unsupported_params: ClassVar[frozenset[str]] = frozenset({"top_k"})
    # Finish reasons that mean the provider cut the answer short (its failure, not the
    # model's choice): the stream is relayed as sent but metered as interrupted.
    cut_short_reasons: ClassVar[frozenset[str]] = frozenset()
    # The value this provider takes for each thinking mode (gateway/thinking.py), so every
    # provider gives the same mode; `mode_values` in the provider's config overrides entries.
    mode_values: ClassVar[dict[str, str]] = {"low": "low", "high": "high", "max": "max"}
    # Statuses that mean the account is out of quota (a spent balance, a plan's usage limit):
    # status -> quota kind. Failover takes the whole account out for long (see failover.py).
    quota_statuses: ClassVar[dict[int, str]] = {}

    def __init__(self, name: str, config: ProviderConfig, memory: ReasoningMemory) -> None:
        self.name = name
        self.config = config
        self.memory = memory
        self.url = config.base_url.rstrip("/") + self.chat_path
        # Built once: the transport (gateway/upstream.py) writes them into one prebuilt
        # request head per provider; the explicit User-Agent names the gateway upstream.
        self.timeouts: Timeouts = config.timeouts
        key = config.api_key.get_secret_value() if config.api_key else ""
        self.headers: CIMultiDictProxy[str] = CIMultiDictProxy(CIMultiDict({
            "User-Agent": USER_AGENT,
            **config.headers,
            "Authorization": f"Bearer {key}",
            "Content-Type": "application/json",
        }))

    def __repr__(self) -> str:  # never show the key
        return f"<{type(self).__name__} {self.name} {self.config.base_url}>"

    # ---- request --------------------------------------------------------------------------

    def build_payload(
        self, call: Call, upstream_model: str, thinking: Thinking, stream: bool
    ) -> bytes:
        """Translate a canonical call for this provider.

        The call is shared between failover attempts, so it is copied, never changed.
        """
        params = call.params
        payload = {"model": upstream_model, **params}
        for name in self.unsupported_params:
            payload.pop(name, None)
        payload["messages"] = self._translate_history(call.messages, thinking)
        self.encode_thinking(payload, thinking)
        if stream:
            # Always ask for usage: every answer is metered; surfaces hide the usage chunk
            # from clients that did not ask for it.
            payload["stream"] = True
            options = params.get("stream_options")
            payload["stream_options"] = {
                **(options if isinstance(options, dict) else {}),
                "include_usage": True,
            }
        for key, value in self.config.extra_body.items():
            payload.setdefault(key, value)
        return orjson.dumps(payload)

    def encode_thinking(self, payload: dict[str, Any], thinking: Thinking) -> None:
        """Write the thinking mode into `payload` in this provider's dialect."""
        raise NotImplementedError

    def mode_value(self, mode: str) -> str:
        """This provider's value for a thinking mode (config first, then the adapter's)."""
        return self.config.mode_values.get(mode) or self.mode_values.get(mode, mode)

    def _translate_history(
        self, messages: list[dict[str, Any]], thinking: Thinking
    ) -> list[dict[str, Any]]:
        """Move each assistant turn's reasoning into this provider's field (copying only the
        turns that change) and restore reasoning DeepSeek insists on."""
        out = messages
        for i, msg in enumerate(messages):
            if msg.get("role") != "assistant":
                continue
            fixed = self._translate_assistant_turn(msg, thinking)
            if fixed is not msg:
                if out is messages:
                    out = list(messages)
                out[i] = fixed
        return out

    def _translate_assistant_turn(
        self, msg: dict[str, Any], thinking: Thinking
    ) -> dict[str, Any]:
        own = self.reasoning_field
        other = "reasoning" if own == "reasoning_content" else "reasoning_content"
        text = msg.get(own)
        changed = False
        if other in msg or "reasoning_details" in msg:
            msg = dict(msg)
            other_text = msg.pop(other, None)
            msg.pop("reasoning_details", None)
            if text is None and isinstance(other_text, str):
                text = other_text
                msg[own] = text
            changed = True
        if (
            self.requires_reasoning_on_tool_turns
            and thinking.enabled
            and msg.get("tool_calls")
            and not isinstance(text, str)
        ):
            if not changed:
                msg = dict(msg)
            msg[own] = self.memory.recall(msg["tool_calls"]) or ""
        return msg

    # ---- answer ---------------------------------------------------------------------------

    def translate_answer(self, data: Any, public_model: str, thinking: Thinking) -> Answer:
        """Turn a non-streamed answer into a canonical one; reject what is not one."""
        if not isinstance(data, dict) or not isinstance(data.get("choices"), list):
            raise self.invalid_answer("the upstream answer is not a chat completion")
        data["model"] = public_model
        choices: list[Choice] = []
        for position, choice in enumerate(data["choices"]):
            if not isinstance(choice, dict):
                continue
            message = choice.get("message")
            if not isinstance(message, dict):
                message = {}
            self.canonical_reasoning(message, thinking)
            calls = message.get("tool_calls")
            reasoning = message.get("reasoning_content")
            if calls and reasoning:
                self.memory.remember(calls, reasoning)
            index = choice.get("index", position)
            finish = choice.get("finish_reason")
            content = message.get("content")
            choices.append(Choice(
                index if isinstance(index, int) else position,
                content if isinstance(content, str) else None,
                reasoning if isinstance(reasoning, str) else None,
                _tool_calls(calls),
                finish if isinstance(finish, str) else None,
            ))
        usage = self.parse_usage(data.get("usage"))
        if usage is not None:
            data["usage"] = usage.to_openai()
        answer_id, created = data.get("id"), data.get("created")
        return Answer(answer_id if isinstance(answer_id, str) else "",
                      created if isinstance(created, int) else int(time.time()),
                      choices, usage, data)

    def canonical_reasoning(self, part: dict[str, Any], thinking: Thinking) -> None:
        """Rename this provider's reasoning field to `reasoning_content` in a message/delta."""
        if self.reasoning_field != "reasoning_content" and self.reasoning_field in part:
            part["reasoning_content"] = part.pop(self.reasoning_field)
        part.pop("reasoning_details", None)
        if thinking.exclude:
            part.pop("reasoning_content", None)

    def parse_usage(self, raw: Any) -> Usage | None:
        """Read this provider's usage object; the default reads OpenAI's plus DeepSeek's.
        Runs once per call, so each field is read directly (a count is an int, never a
        bool: JSON parsed by orjson gives exact types, so `type(...) is int` says both) rather
        than through a generic path walk or a helper call per field."""
        if type(raw) is not dict:
            return None
        get = raw.get
        prompt = get("prompt_tokens")
        prompt = prompt if type(prompt) is int else 0
        hit = get("prompt_cache_hit_tokens")
        if type(hit) is not int:
            details = get("prompt_tokens_details")
            hit = details.get("cached_tokens") if type(details) is dict else None
            if type(hit) is not int:
                hit = None
        miss = get("prompt_cache_miss_tokens")
        if type(miss) is not int:
            miss = prompt - hit if hit is not None else None
        completion = get("completion_tokens")
        details = get("completion_tokens_details")
        reasoning = details.get("reasoning_tokens") if type(details) is dict else None
        cost = get("cost")
        return Usage(prompt, completion if type(completion) is int else 0, hit, miss,
                     reasoning if type(reasoning) is int else None,
                     float(cost) if type(cost) is int or type(cost) is float else None)

    # ---- errors ---------------------------------------------------------------------------

    def error_from_response(
        self, status: int, raw: bytes, headers: Any = None
    ) -> UpstreamError:
        """Map an upstream HTTP error to our error tree, never echoing credentials."""
        retry_after = parse_retry_after(headers.get("Retry-After") if headers else None)
        if status in (401, 403):
            return UpstreamError(
                f"{self.name} rejected the gateway's credentials (HTTP {status}); "
                "an operator must check this provider's API key",
                provider=self.name, upstream_status=status, code="upstream_auth_failed",
            )
        message, code = error_text(raw)
        if status >= 500 or status in (402, 408, 429):
            message = f"{self.name}: {message}"
        return UpstreamError(
            message, provider=self.name, upstream_status=status, code=code,
            retry_after=retry_after, quota=self.quota_statuses.get(status),
        )

    def error_in_chunk(self, data: dict[str, Any]) -> UpstreamError | None:
        """An error the provider sent inside an HTTP 200 stream, if this chunk is one."""
        err = data.get("error")
        if err is None:
            return None
        message, _ = error_text(orjson.dumps(data))
        status = err.get("code") if isinstance(err, dict) else None
        return UpstreamError(
            f"{self.name} failed mid-answer: {message}",
            provider=self.name,
            upstream_status=status if isinstance(status, int) and status >= 400 else None,
            code="upstream_stream_error",
        )

    def cut_short(self, finish_reason: str) -> UpstreamError:
        return UpstreamError(
            f"{self.name} cut the answer short (finish_reason {finish_reason})",
            provider=self.name, upstream_status=503, code="upstream_cut_short",
        )

    def invalid_answer(self, why: str) -> UpstreamError:
        return UpstreamError(
            f"{self.name}: {why}", provider=self.name, upstream_status=None,
            code="upstream_invalid_answer",
        )


def _tool_calls(calls: Any) -> list[ToolCall]:
    if not isinstance(calls, list):
        return []
    out = []
    for call in calls:
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict):
            continue
        call_id, name, arguments = call.get("id"), function.get("name"), function.get("arguments")
        out.append(ToolCall(call_id if isinstance(call_id, str) else "",
                            name if isinstance(name, str) else "",
                            arguments if isinstance(arguments, str) else "{}"))
    return out


def error_text(raw: bytes) -> tuple[str, str | None]:
    """Message and code from any of the three error shapes (object, string, or plain text)."""
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        text = raw.decode("utf-8", "replace").strip()
        return (text[:300] or "empty error body"), None
    err = data.get("error") if isinstance(data, dict) else None
    if isinstance(err, str):
        return err, None
    if isinstance(err, dict):
        code = err.get("code")
        return str(err.get("message") or "upstream error"), code if isinstance(code, str) else None
    return "upstream error", None


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header, given as seconds or as an HTTP date."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())
