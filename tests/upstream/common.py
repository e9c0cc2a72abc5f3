"""Shared machinery for the simulated upstream providers.

Each simulator is a real aiohttp server on loopback, run in a background thread so that
synchronous tests, async tests and out-of-process benchmarks can all talk to it over HTTP.
The answers are deterministic functions of the request (they echo the last user message),
so tests can check them without hard-coding provider output.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import random
import re
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self

import orjson
from aiohttp import web

from tests.upstream import template

JSON = dict[str, Any]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

SIM_PREFIX = "/_sim/"
GARBAGE_BODY = b"<html><body>502 Bad Gateway: upstream said something odd</body></html>"
GARBAGE_EVENT = b"data: this is not json {\n\n"
BODY_KEY = web.RequestKey("sim_json_body", object)
FAIL_SEED = 20_260_724  # the coin of Faults.fail_ratio restarts from here on reset()


# --------------------------------------------------------------------------- faults


@dataclass
class Faults:
    """Mutable failure switches; all off by default. Replace or mutate from tests."""

    status: int | None = None
    status_times: int | None = None
    retry_after: float | None = None
    reset: bool = False
    hang_seconds: float = 0.0
    first_byte_delay: float = 0.0
    garbage: bool = False
    cut_after_chunks: int | None = None
    midstream_error_after: int | None = None
    delay_ms: float = 0.0
    chunk_delay_ms: float = 0.0  # extra: pause between stream events (benchmarks)
    fail_ratio: float = 0.0  # extra: answer fail_status to this share of requests (seeded)
    fail_status: int = 503

    @classmethod
    def from_json(cls, data: JSON) -> Faults:
        """Build from a control-endpoint payload, rejecting unknown fields loudly."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - names
        if unknown:
            raise ValueError(f"unknown fault fields: {sorted(unknown)}")
        return cls(**data)


@dataclass
class Script:
    """Scripted agent turns, off by default (`sim.script = Script(...)` or POST /_sim/script).

    A request whose last turn is the user's (system messages aside) and that offers the tool
    `tool` gets a call to it with `arguments` (a JSON object, or a string sent verbatim as the
    wire's arguments); a request whose last turn is a `tool` result gets `text`. Any other
    request is answered as usual. Streaming, usage, thinking (reasoning_content) and the
    provider's validation are those of an ordinary answer.
    """

    tool: str
    arguments: JSON | str = dataclasses.field(default_factory=dict)
    text: str = "done"

    @classmethod
    def from_json(cls, data: JSON) -> Script:
        """Build from a control-endpoint payload, rejecting unknown or mistyped fields."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - names
        if unknown:
            raise ValueError(f"unknown script fields: {sorted(unknown)}")
        script = cls(**data)
        if not isinstance(script.tool, str) or not script.tool:
            raise ValueError("script.tool must be a non-empty string")
        if not isinstance(script.arguments, dict | str):
            raise ValueError("script.arguments must be a JSON object or a string")
        if not isinstance(script.text, str):
            raise ValueError("script.text must be a string")
        return script

    def to_json(self) -> JSON:
        return dataclasses.asdict(self)

    def arguments_json(self) -> str:
        args = self.arguments
        return args if isinstance(args, str) else orjson.dumps(args).decode()


class RequestError(Exception):
    """A request the simulated provider refuses; each provider renders it in its own error
    shape (status and message only, like the real validation failures)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass
class RecordedRequest:
    """One request as the upstream saw it (tests assert on what the gateway sent)."""

    method: str
    path: str
    headers: dict[str, str]
    json: Any

    def to_json(self) -> JSON:
        return dataclasses.asdict(self)


# --------------------------------------------------------------------------- content model


def words(text: str | None) -> int:
    """Token count of the simulators: one whitespace-separated word is one token."""
    return len(text.split()) if text else 0


def word_pieces(text: str) -> list[str]:
    """Split into one piece per word, keeping whitespace, so ''.join(pieces) == text."""
    pieces = re.findall(r"\s*\S+", text)
    tail = text[len("".join(pieces)) :]
    if tail:
        if pieces:
            pieces[-1] += tail
        else:
            pieces = [tail]
    return pieces


def message_text(message: JSON) -> str:
    """Text of a message's content, whether a string or a list of content parts."""
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(
            str(part.get("text", "")) for part in content if isinstance(part, dict)
        )
    return ""


def last_user_text(messages: list[JSON]) -> str:
    for message in reversed(messages):
        if message.get("role") == "user":
            return message_text(message)
    return ""


def prompt_words(messages: Iterable[JSON]) -> int:
    return sum(words(message_text(m)) for m in messages)


def prefix_key(messages: list[JSON]) -> str | None:
    """Hash of all messages but the last: the part a provider's prompt cache can reuse."""
    prefix = messages[:-1]
    if not prefix:
        return None
    return hashlib.sha256(orjson.dumps(prefix, option=orjson.OPT_SORT_KEYS)).hexdigest()


@dataclass
class ToolCall:
    id: str
    name: str
    arguments: str

    def to_json(self) -> JSON:
        return {
            "id": self.id,
            "type": "function",
            "function": {"name": self.name, "arguments": self.arguments},
        }


@dataclass
class Choice:
    """One planned answer; providers decide how to put it on the wire."""

    index: int
    content: str | None
    reasoning: str | None
    tool_calls: list[ToolCall]
    finish_reason: str
    logprobs: bool

    def logprobs_for(self, text: str | None) -> JSON | None:
        if not self.logprobs or text is None:
            return None
        return {
            "content": [
                {"token": w, "logprob": -0.1, "bytes": None, "top_logprobs": []}
                for w in text.split()
            ]
        }

    def completion_words(self) -> int:
        return (
            words(self.content)
            + words(self.reasoning)
            + sum(words(c.arguments) for c in self.tool_calls)
        )


@dataclass
class Completion:
    """A full planned answer plus its token accounting."""

    id: str
    created: int
    model: str
    choices: list[Choice]
    prompt_tokens: int
    cached_tokens: int

    @property
    def completion_tokens(self) -> int:
        return sum(c.completion_words() for c in self.choices)

    @property
    def reasoning_tokens(self) -> int:
        return sum(words(c.reasoning) for c in self.choices)

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


def _tool_names(body: JSON) -> list[str]:
    names: list[str] = []
    for tool in body.get("tools") or []:
        if isinstance(tool, dict):
            fn = tool.get("function") or {}
            names.append(str(fn.get("name", "tool")))
    return names


def _wants_tools(body: JSON, messages: list[JSON]) -> list[str]:
    """Names of the tools to call, or [] for a text answer."""
    names = _tool_names(body)
    choice = body.get("tool_choice")
    if not names or choice == "none" or messages[-1].get("role") != "user":
        return []
    if isinstance(choice, dict):
        forced = (choice.get("function") or {}).get("name")
        if forced:
            return [str(forced)]
    text = last_user_text(messages)
    if "parallel" in text.split() and len(names) >= 2:
        return names[:2]
    return names[:1]


def _stop_strings(body: JSON) -> list[str]:
    stop = body.get("stop")
    if isinstance(stop, str):
        return [stop]
    if isinstance(stop, list):
        return [s for s in stop if isinstance(s, str) and s]
    return []


def _shape_content(body: JSON, text: str, index: int) -> tuple[str, str]:
    """Content and finish_reason after response_format, n-suffix, stop and max_tokens."""
    fmt = (body.get("response_format") or {}).get("type")
    content = orjson.dumps({"echo": text}).decode() if fmt in ("json_object", "json_schema") \
        else "echo: " + text
    if index > 0:
        content += f" #{index}"
    finish = "stop"
    for stop in _stop_strings(body):
        at = content.find(stop)
        if at >= 0:
            content = content[:at]
    limit = body.get("max_completion_tokens", body.get("max_tokens"))
    if isinstance(limit, int) and limit >= 0 and words(content) > limit:
        content = "".join(word_pieces(content)[:limit])
        finish = "length"
    return content, finish


def last_turn_role(messages: list[JSON]) -> str | None:
    """Role of the last message that is not a system (or developer) message."""
    for message in reversed(messages):
        role = message.get("role")
        if role not in ("system", "developer"):
            return str(role)
    return None


def _scripted(body: JSON, messages: list[JSON], script: Script) -> tuple[str | None, str] | None:
    """(tool, "") to call the tool or (None, text) to answer with text when the script
    answers this request; None when it does not."""
    role = last_turn_role(messages)
    if role == "tool":
        return None, script.text
    if role == "user" and script.tool in _tool_names(body) and body.get("tool_choice") != "none":
        return script.tool, ""
    return None


def plan_choices(body: JSON, thinking: bool, script: Script | None = None) -> list[Choice]:
    """The deterministic answer(s) to a chat request."""
    messages: list[JSON] = body["messages"]
    text = last_user_text(messages)
    reasoning = "thinking about: " + text if thinking else None
    tools = _wants_tools(body, messages)
    n_field = body.get("n")
    n = n_field if isinstance(n_field, int) and n_field > 0 else 1
    scripted = _scripted(body, messages, script) if script is not None else None
    choices: list[Choice] = []
    for i in range(n):
        if script is not None and scripted is not None:
            tool, reply = scripted
            if tool is not None:
                call = ToolCall(f"call_{uuid.uuid4().hex[:24]}", tool, script.arguments_json())
                choices.append(Choice(i, None, reasoning, [call], "tool_calls", False))
            else:
                choices.append(Choice(i, reply, reasoning, [], "stop", bool(body.get("logprobs"))))
            continue
        if tools:
            args = orjson.dumps({"echo": text}).decode()
            calls = [ToolCall(f"call_{uuid.uuid4().hex[:24]}", name, args) for name in tools]
            choices.append(Choice(i, None, reasoning, calls, "tool_calls", False))
            continue
        content, finish = _shape_content(body, text, i)
        choices.append(Choice(i, content, reasoning, [], finish, bool(body.get("logprobs"))))
    return choices


# --------------------------------------------------------------------------- stream events


@dataclass
class Event:
    """One unit written to a stream: a data payload (counted for faults) or raw bytes."""

    raw: bytes
    is_data: bool = True


def sse(payload: JSON | str) -> Event:
    data = payload if isinstance(payload, str) else orjson.dumps(payload).decode()
    return Event(f"data: {data}\n\n".encode())


def comment(text: str) -> Event:
    return Event(f": {text}\n\n".encode(), is_data=False)


def split_arguments(arguments: str) -> list[str]:
    """Split tool-call arguments into at least two fragments, as real streams do."""
    if len(arguments) < 2:
        return [arguments, ""]
    step = max(1, len(arguments) // 3)
    return [arguments[i : i + step] for i in range(0, len(arguments), step)]


def openai_deltas(
    choice: Choice, reasoning_key: str | None, tool_index: Callable[[int], int]
) -> list[tuple[JSON, JSON | None]]:
    """(delta, logprobs) pairs for one choice, OpenAI style, without the final chunk.

    reasoning_key None means reasoning is not shown on the wire.
    tool_index maps the real call index to the one on the wire (Ollama: always 0).
    """
    out: list[tuple[JSON, JSON | None]] = [({"role": "assistant", "content": ""}, None)]
    if choice.reasoning and reasoning_key:
        out += [({reasoning_key: p}, None) for p in word_pieces(choice.reasoning)]
    for k, call in enumerate(choice.tool_calls):
        head = {"index": tool_index(k), "id": call.id, "type": "function",
                "function": {"name": call.name, "arguments": ""}}
        out.append(({"tool_calls": [head]}, None))
        for frag in split_arguments(call.arguments):
            out.append(
                ({"tool_calls": [{"index": tool_index(k), "function": {"arguments": frag}}]},
                 None)
            )
    if choice.content:
        out += [({"content": p}, choice.logprobs_for(p)) for p in word_pieces(choice.content)]
    return out


# --------------------------------------------------------------------------- the server


class SimulatedProvider:
    """Base class: server lifecycle, request recording, faults and control endpoints.

    Subclasses add their routes in `add_routes` and implement `error_response`.
    """

    name = "provider"
    api_prefix = ""  # appended to the server URL to form base_url

    def __init__(self, key: str, port: int = 0, host: str = "127.0.0.1") -> None:
        self.key = key
        self.host = host
        self.port = port
        self.faults = Faults()
        self.script: Script | None = None
        self.tokenizer = False  # True: prompt tokens as DeepSeek counts them (template.py)
        self.requests: list[RecordedRequest] = []
        self.disconnects = 0
        self._seen_prefixes: set[str] = set()
        self._lock = threading.Lock()
        self._fail_rng = random.Random(FAIL_SEED)
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None

    # ---- lifecycle

    @property
    def server_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        """What a client configures as the provider's base URL."""
        return self.server_url + self.api_prefix

    def start(self) -> str:
        """Start serving in a background thread; returns base_url once listening."""
        if self._thread is not None:
            return self.base_url
        ready = threading.Event()
        errors: list[BaseException] = []
        self._thread = threading.Thread(
            target=self._serve, args=(ready, errors), name=f"sim-{self.name}", daemon=True
        )
        self._thread.start()
        ready.wait(10)
        if errors:
            self._thread = None
            raise errors[0]
        return self.base_url

    def stop(self) -> None:
        """Stop the server; in-flight handlers (e.g. hangs) are cancelled quickly."""
        if self._thread is None or self._loop is None:
            return
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._thread = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _serve(self, ready: threading.Event, errors: list[BaseException]) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._startup())
        except BaseException as exc:  # reported to start()
            errors.append(exc)
            ready.set()
            loop.close()
            return
        ready.set()
        try:
            loop.run_forever()
        finally:
            if self._runner is not None:
                loop.run_until_complete(self._runner.cleanup())
            loop.run_until_complete(_cancel_leftovers())
            loop.close()

    async def _startup(self) -> None:
        app = web.Application(middlewares=[self._middleware])
        app.router.add_post(SIM_PREFIX + "faults", self._control_faults)
        app.router.add_get(SIM_PREFIX + "faults", self._control_get_faults)
        app.router.add_post(SIM_PREFIX + "script", self._control_script)
        app.router.add_get(SIM_PREFIX + "script", self._control_get_script)
        app.router.add_delete(SIM_PREFIX + "script", self._control_clear_script)
        app.router.add_get(SIM_PREFIX + "requests", self._control_requests)
        app.router.add_get(SIM_PREFIX + "stats", self._control_stats)
        app.router.add_post(SIM_PREFIX + "reset", self._control_reset)
        self.add_routes(app)
        self._runner = web.AppRunner(app, shutdown_timeout=0.2, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        sockets = self._runner.addresses
        self.port = int(sockets[0][1])

    # ---- hooks for subclasses

    def add_routes(self, app: web.Application) -> None:
        raise NotImplementedError

    def error_response(
        self, status: int, message: str | None = None, headers: dict[str, str] | None = None
    ) -> web.Response:
        """The provider's own error body for an HTTP status (message None = its default)."""
        raise NotImplementedError

    # ---- state helpers (thread-safe)

    def reset(self) -> None:
        """Forget requests, faults, the script, disconnects and the prompt cache."""
        with self._lock:
            self.requests.clear()
            self.faults = Faults()
            self.script = None
            self.tokenizer = False
            self.disconnects = 0
            self._seen_prefixes.clear()
            self._fail_rng.seed(FAIL_SEED)

    def cached_tokens(self, messages: list[JSON]) -> int:
        """Prefix words counted as a cache hit if this exact prefix was seen before."""
        key = prefix_key(messages)
        if key is None:
            return 0
        with self._lock:
            hit = key in self._seen_prefixes
            self._seen_prefixes.add(key)
        return prompt_words(messages[:-1]) if hit else 0

    def new_completion(
        self, body: JSON, thinking: bool, id_prefix: str = "chatcmpl-"
    ) -> Completion:
        messages: list[JSON] = body["messages"]
        return Completion(
            id=id_prefix + str(uuid.uuid4()),
            created=int(time.time()),
            model=str(body.get("model")),
            choices=plan_choices(body, thinking, self.script),
            prompt_tokens=(template.prompt_tokens(body, thinking) if self.tokenizer
                           else prompt_words(messages)),
            cached_tokens=self.cached_tokens(messages),
        )

    def _record(self, request: web.Request, body: Any) -> None:
        headers = {str(k): v for k, v in request.headers.items()}
        rec = RecordedRequest(request.method, request.path, headers, body)
        with self._lock:
            self.requests.append(rec)

    def _take_forced_status(self) -> tuple[int, float | None] | None:
        """The forced status for this request, consuming one of status_times; else, with
        `fail_ratio`, a seeded coin decides whether this request fails with `fail_status`."""
        with self._lock:
            f = self.faults
            if f.status is None:
                if f.fail_ratio and self._fail_rng.random() < f.fail_ratio:
                    return f.fail_status, f.retry_after
                return None
            status, retry = f.status, f.retry_after
            if f.status_times is not None:
                f.status_times -= 1
                if f.status_times <= 0:
                    f.status, f.status_times = None, None
            return status, retry

    # ---- middleware: recording and pre-answer faults

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path.startswith(SIM_PREFIX):
            return await handler(request)
        body = await read_json(request)
        request[BODY_KEY] = body
        self._record(request, None if body is _INVALID else body)
        early = await self._pre_faults(request, body)
        if early is not None:
            return early
        return await handler(request)

    async def _pre_faults(self, request: web.Request, body: Any) -> web.StreamResponse | None:
        f = self.faults
        if f.delay_ms:
            await asyncio.sleep(f.delay_ms / 1000)
        if f.hang_seconds:
            await asyncio.sleep(f.hang_seconds)
        if f.reset:
            abort(request)
            return web.Response(status=500)  # never reaches the client
        forced = self._take_forced_status()
        if forced is not None:
            status, retry = forced
            headers = {"Retry-After": format_retry_after(retry)} if retry is not None else None
            return self.error_response(status, headers=headers)
        streaming = isinstance(body, dict) and bool(body.get("stream"))
        if f.garbage and not streaming:
            return web.Response(body=GARBAGE_BODY, content_type="application/json")
        return None

    # ---- streaming

    async def open_stream(
        self, request: web.Request, content_type: str = "text/event-stream"
    ) -> web.StreamResponse:
        resp = web.StreamResponse(
            headers={"Content-Type": content_type, "Cache-Control": "no-cache"}
        )
        await resp.prepare(request)
        return resp

    async def write_stream(
        self,
        request: web.Request,
        resp: web.StreamResponse,
        events: list[Event],
        error_events: Callable[[], list[Event]],
    ) -> web.StreamResponse:
        """Write events applying stream faults; count a client disconnect if it happens."""
        f = self.faults
        try:
            await self._write_events(request, resp, events, error_events, f)
        except ConnectionResetError:
            self._count_disconnect()
        except asyncio.CancelledError:
            self._count_disconnect()
            raise
        return resp

    def _count_disconnect(self) -> None:
        with self._lock:
            self.disconnects += 1

    async def _write_events(
        self,
        request: web.Request,
        resp: web.StreamResponse,
        events: list[Event],
        error_events: Callable[[], list[Event]],
        f: Faults,
    ) -> None:
        if f.first_byte_delay:
            await asyncio.sleep(f.first_byte_delay)
        if f.garbage:
            await resp.write(GARBAGE_EVENT)
        sent = 0
        for event in events:
            if event.is_data and f.cut_after_chunks is not None and sent >= f.cut_after_chunks:
                abort(request)
                return
            if event.is_data and f.midstream_error_after is not None \
                    and sent >= f.midstream_error_after:
                for err in error_events():
                    await resp.write(err.raw)
                await resp.write_eof()
                return
            await resp.write(event.raw)
            if event.is_data:
                sent += 1
                if f.chunk_delay_ms:
                    await asyncio.sleep(f.chunk_delay_ms / 1000)
        await resp.write_eof()

    # ---- control endpoints

    async def _control_faults(self, request: web.Request) -> web.Response:
        try:
            data = await request.json()
            faults = Faults.from_json(data if isinstance(data, dict) else {})
        except (ValueError, TypeError) as exc:
            return web.json_response({"error": str(exc)}, status=400)
        with self._lock:
            self.faults = faults
        return web.json_response(dataclasses.asdict(faults))

    async def _control_get_faults(self, request: web.Request) -> web.Response:
        return web.json_response(dataclasses.asdict(self.faults))

    async def _control_script(self, request: web.Request) -> web.Response:
        try:
            data = await request.json()
            if not isinstance(data, dict):
                raise ValueError("the script is a JSON object")
            script = Script.from_json(data)
        except (ValueError, TypeError) as exc:
            return web.json_response({"error": str(exc)}, status=400)
        with self._lock:
            self.script = script
        return web.json_response(script.to_json())

    async def _control_get_script(self, request: web.Request) -> web.Response:
        script = self.script
        return web.json_response(script.to_json() if script is not None else None)

    async def _control_clear_script(self, request: web.Request) -> web.Response:
        with self._lock:
            self.script = None
        return web.json_response(None)

    async def _control_requests(self, request: web.Request) -> web.Response:
        with self._lock:
            data = [r.to_json() for r in self.requests]
        return json_response(data)

    async def _control_stats(self, request: web.Request) -> web.Response:
        with self._lock:
            data = {"requests": len(self.requests), "disconnects": self.disconnects}
        return web.json_response(data)

    async def _control_reset(self, request: web.Request) -> web.Response:
        self.reset()
        return web.json_response({"ok": True})


# --------------------------------------------------------------------------- small utilities


async def _cancel_leftovers() -> None:
    """Cancel handlers still sleeping for a client that already left (hang faults)."""
    current = asyncio.current_task()
    tasks = [t for t in asyncio.all_tasks() if t is not current]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


class _Invalid:
    """Marker for a body that is present but not valid JSON."""


_INVALID: Any = _Invalid()


def is_invalid(body: Any) -> bool:
    return isinstance(body, _Invalid)


async def read_json(request: web.Request) -> Any:
    """Parsed JSON body, None when there is no body, or the _INVALID marker."""
    if not request.can_read_body:
        return None
    raw = await request.read()
    if not raw.strip():
        return None
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return _INVALID


def request_body(request: web.Request) -> Any:
    """The body the middleware already parsed."""
    return request.get(BODY_KEY)


def json_response(
    data: Any, status: int = 200, headers: dict[str, str] | None = None, prefix: bytes = b""
) -> web.Response:
    return web.Response(
        body=prefix + orjson.dumps(data),
        status=status,
        headers=headers,
        content_type="application/json",
    )


def bearer_token(request: web.Request) -> str | None:
    auth = request.headers.get("Authorization", "")
    scheme, _, token = auth.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def abort(request: web.Request) -> None:
    """Drop the TCP connection without an answer (a reset as the client sees it)."""
    transport = request.transport
    if transport is not None:
        transport.abort()


def format_retry_after(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def mask_key(key: str | None) -> str:
    return "****" + (key or "")[-4:]



# --------------------------------------------------------------------------- OpenAI-shaped output


def same_index(k: int) -> int:
    return k


def chunk_payloads(
    completion: Completion,
    envelope: JSON,
    reasoning_key: str | None,
    tool_index: Callable[[int], int] = same_index,
) -> list[JSON]:
    """All chat.completion.chunk payloads for a completion (no usage chunk, no [DONE])."""
    out: list[JSON] = []
    for choice in completion.choices:
        for delta, logprobs in openai_deltas(choice, reasoning_key, tool_index):
            c = {"index": choice.index, "delta": delta, "logprobs": logprobs,
                 "finish_reason": None}
            out.append({**envelope, "choices": [c]})
        last = {"index": choice.index, "delta": {}, "logprobs": None,
                "finish_reason": choice.finish_reason}
        out.append({**envelope, "choices": [last]})
    return out


def openai_message(choice: Choice, reasoning_key: str | None) -> JSON:
    """The non-streamed assistant message; reasoning under reasoning_key if given."""
    message: JSON = {"role": "assistant", "content": choice.content}
    if reasoning_key:
        message[reasoning_key] = choice.reasoning
    if choice.tool_calls:
        message["tool_calls"] = [c.to_json() for c in choice.tool_calls]
    return message


def openai_choices(completion: Completion, reasoning_key: str | None) -> list[JSON]:
    return [
        {
            "index": c.index,
            "message": openai_message(c, reasoning_key),
            "logprobs": c.logprobs_for(c.content),
            "finish_reason": c.finish_reason,
        }
        for c in completion.choices
    ]
