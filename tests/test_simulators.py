"""Fast checks that each simulated upstream speaks its provider's dialect and obeys faults."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest

from tests.upstream.common import Faults, Script, SimulatedProvider
from tests.upstream.deepseek import SimulatedDeepSeek
from tests.upstream.ollama import SimulatedOllama
from tests.upstream.openrouter import SimulatedOpenRouter

DS_MODEL = "deepseek-v4-flash"
OR_MODEL = "deepseek/deepseek-v4-flash"
TOOLS = [
    {"type": "function", "function": {"name": "get_weather", "parameters": {}}},
    {"type": "function", "function": {"name": "get_time", "parameters": {}}},
]


# --------------------------------------------------------------------------- fixtures


def _serve(sim: SimulatedProvider) -> Iterator[SimulatedProvider]:
    with sim:
        yield sim


@pytest.fixture(scope="module")
def _deepseek() -> Iterator[SimulatedProvider]:
    yield from _serve(SimulatedDeepSeek())


@pytest.fixture(scope="module")
def _openrouter() -> Iterator[SimulatedProvider]:
    yield from _serve(SimulatedOpenRouter())


@pytest.fixture(scope="module")
def _ollama() -> Iterator[SimulatedProvider]:
    yield from _serve(SimulatedOllama())


@pytest.fixture
def deepseek(_deepseek: SimulatedDeepSeek) -> SimulatedDeepSeek:
    _deepseek.reset()
    return _deepseek


@pytest.fixture
def openrouter(_openrouter: SimulatedOpenRouter) -> SimulatedOpenRouter:
    _openrouter.reset()
    return _openrouter


@pytest.fixture
def ollama(_ollama: SimulatedOllama) -> SimulatedOllama:
    _ollama.reset()
    return _ollama


# --------------------------------------------------------------------------- helpers


def chat_url(sim: SimulatedProvider) -> str:
    """Ollama's OpenAI endpoint lives under /v1; the others directly under base_url."""
    suffix = "/v1/chat/completions" if isinstance(sim, SimulatedOllama) else "/chat/completions"
    return sim.base_url + suffix


def post(sim: SimulatedProvider, body: dict[str, Any], **kw: Any) -> httpx.Response:
    headers = kw.pop("headers", {"Authorization": f"Bearer {sim.key}"})
    kw.setdefault("timeout", 5)
    return httpx.post(chat_url(sim), json=body, headers=headers, **kw)


def req(model: str, text: str = "hello big world", **extra: Any) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": text}], **extra}


def sse_lines(text: str) -> list[str]:
    return [line for line in text.split("\n") if line]


def data_events(text: str) -> list[Any]:
    """Parsed `data:` payloads of an SSE body ([DONE] kept as the string)."""
    out: list[Any] = []
    for line in sse_lines(text):
        if line.startswith("data: "):
            raw = line[len("data: ") :]
            out.append(raw if raw == "[DONE]" else orjson.loads(raw))
    return out


def streamed_text(events: list[Any], key: str) -> str:
    return "".join(
        e["choices"][0]["delta"].get(key) or ""
        for e in events
        if isinstance(e, dict) and e.get("choices")
    )


# --------------------------------------------------------------------------- DeepSeek


def test_deepseek_auth_and_retired_models(deepseek: SimulatedDeepSeek) -> None:
    r = post(deepseek, req(DS_MODEL), headers={"Authorization": "Bearer sk-wrong-abcd"})
    assert r.status_code == 401
    err = r.json()["error"]
    assert err["type"] == "authentication_error" and "****abcd" in err["message"]
    for retired in ("deepseek-chat", "deepseek-reasoner"):  # DeepSeek's words (PROVIDERS.md)
        r = post(deepseek, req(retired))
        assert r.status_code == 400 and r.json()["error"]["message"] == (
            "The supported API model names are deepseek-v4-pro or deepseek-v4-flash, but you "
            f"passed {retired}")
    assert post(deepseek, req("deepseek-flash")).status_code == 200
    r = post(deepseek, req("deepseek-v4.1-flash"))  # not a DeepSeek name
    assert r.status_code == 400 and r.json()["error"]["message"] == "Model Not Exist"
    r = httpx.post(chat_url(deepseek), content=b"{nope", headers={
        "Authorization": f"Bearer {deepseek.key}"})
    assert r.status_code == 400
    assert post(deepseek, {"model": DS_MODEL}).status_code == 422


def test_deepseek_limits_and_effort_rules(deepseek: SimulatedDeepSeek) -> None:
    for limit in (393_217, 1_000_000, 0, -5):
        r = post(deepseek, req(DS_MODEL, max_tokens=limit))
        assert r.status_code == 400 and r.json()["error"]["message"] == (
            "Invalid max_tokens value, the valid range of max_tokens is [1, 393216]")
    assert post(deepseek, req(DS_MODEL, max_tokens=393_216)).status_code == 200
    r = post(deepseek, req(DS_MODEL, thinking={"type": "disabled"}, reasoning_effort="high"))
    assert r.status_code == 400
    assert post(deepseek, req(DS_MODEL, reasoning_effort="ultra")).status_code == 200


def test_deepseek_thinking_rules(deepseek: SimulatedDeepSeek) -> None:
    r = post(deepseek, req(DS_MODEL))
    assert r.text.startswith("\n")  # keep-alive blank lines before the JSON body
    msg = r.json()["choices"][0]["message"]
    assert msg == {"role": "assistant", "content": "echo: hello big world",
                   "reasoning_content": "thinking about: hello big world"}
    off = post(deepseek, req(DS_MODEL, thinking={"type": "disabled"}))
    assert off.json()["choices"][0]["message"]["reasoning_content"] is None
    # OpenRouter's `reasoning` object means nothing here.
    ignored = post(deepseek, req(DS_MODEL, reasoning={"enabled": False}))
    assert ignored.json()["choices"][0]["message"]["reasoning_content"]
    assert post(deepseek, req(DS_MODEL, reasoning_effort="medium")).status_code == 200
    assert post(deepseek, req(DS_MODEL, reasoning_effort="extreme")).status_code == 400
    assert post(deepseek, req(DS_MODEL, thinking={"type": "auto"})).status_code == 400

    call = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    history: list[dict[str, Any]] = [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "c1", "content": "ok"},
    ]
    r = post(deepseek, {"model": DS_MODEL, "messages": history})
    assert r.status_code == 400
    assert "message index 1" in r.json()["error"]["message"]
    history[1]["reasoning_content"] = "because"
    assert post(deepseek, {"model": DS_MODEL, "messages": history}).status_code == 200
    del history[1]["reasoning_content"]
    off = post(deepseek, {"model": DS_MODEL, "messages": history, "thinking": {"type": "disabled"}})
    assert off.status_code == 200


def test_deepseek_usage_and_cache(deepseek: SimulatedDeepSeek) -> None:
    messages = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "a b c"}]
    first = post(deepseek, {"model": DS_MODEL, "messages": messages}).json()["usage"]
    assert first["prompt_tokens"] == 5 and first["prompt_cache_hit_tokens"] == 0
    assert first["completion_tokens"] == 4 + 5  # "echo: a b c" + "thinking about: a b c"
    assert first["completion_tokens_details"]["reasoning_tokens"] == 5
    messages[1]["content"] = "d e"
    second = post(deepseek, {"model": DS_MODEL, "messages": messages}).json()["usage"]
    assert second["prompt_cache_hit_tokens"] == 2 and second["prompt_cache_miss_tokens"] == 2
    assert second["prompt_tokens_details"]["cached_tokens"] == 2


def test_deepseek_stream(deepseek: SimulatedDeepSeek) -> None:
    body = req(DS_MODEL, "one two three four five", stream=True,
               stream_options={"include_usage": True})
    text = post(deepseek, body).text
    assert ": keep-alive" in sse_lines(text)
    events = data_events(text)
    assert events[-1] == "[DONE]"
    assert events[-2]["choices"] == [] and events[-2]["usage"]["total_tokens"] > 0
    assert all(e["usage"] is None for e in events[:-2])
    assert events[0]["choices"][0]["delta"]["role"] == "assistant"
    assert streamed_text(events, "content") == "echo: one two three four five"
    assert streamed_text(events, "reasoning_content") == "thinking about: one two three four five"
    plain = data_events(post(deepseek, req(DS_MODEL, stream=True)).text)
    assert all("usage" not in e for e in plain[:-1])


def test_content_features(deepseek: SimulatedDeepSeek) -> None:
    choices = post(deepseek, req(DS_MODEL, "x y", n=2, logprobs=True)).json()["choices"]
    assert [c["message"]["content"] for c in choices] == ["echo: x y", "echo: x y #1"]
    assert [t["token"] for t in choices[0]["logprobs"]["content"]] == ["echo:", "x", "y"]
    js = post(deepseek, req(DS_MODEL, "x", response_format={"type": "json_object"})).json()
    assert orjson.loads(js["choices"][0]["message"]["content"]) == {"echo": "x"}
    stop = post(deepseek, req(DS_MODEL, "a STOP b", stop=["STOP"])).json()["choices"][0]
    assert stop["message"]["content"] == "echo: a " and stop["finish_reason"] == "stop"
    cut = post(deepseek, req(DS_MODEL, "a b c d", max_tokens=2)).json()["choices"][0]
    assert cut["message"]["content"] == "echo: a" and cut["finish_reason"] == "length"
    tool = post(deepseek, req(DS_MODEL, "weather?", tools=TOOLS)).json()["choices"][0]
    assert tool["finish_reason"] == "tool_calls"
    calls = tool["message"]["tool_calls"]
    assert len(calls) == 1 and calls[0]["function"]["name"] == "get_weather"
    assert orjson.loads(calls[0]["function"]["arguments"]) == {"echo": "weather?"}
    none = post(deepseek, req(DS_MODEL, "x", tools=TOOLS, tool_choice="none")).json()
    assert none["choices"][0]["message"]["content"] == "echo: x"


# --------------------------------------------------------------------------- OpenRouter


def test_openrouter_dialect(openrouter: SimulatedOpenRouter) -> None:
    assert openrouter.base_url.endswith("/api/v1")
    r = post(openrouter, req(OR_MODEL), headers={})
    assert r.status_code == 401 and r.json()["error"]["code"] == 401
    r = post(openrouter, req("deepseek-v4-flash"))
    assert r.status_code == 400
    assert r.json()["error"]["message"] == "deepseek-v4-flash is not a valid model ID"
    bad = post(openrouter, req(OR_MODEL, reasoning={"effort": "high", "max_tokens": 10}))
    assert bad.status_code == 400

    body = post(openrouter, req(OR_MODEL + ":free", thinking={"type": "disabled"})).json()
    msg = body["choices"][0]["message"]
    assert msg["reasoning"] == "thinking about: hello big world"  # `thinking` is ignored
    assert msg["reasoning_details"][0]["type"] == "reasoning.text"
    assert "reasoning_content" not in msg
    usage = body["usage"]
    assert usage["cost"] > 0 and usage["completion_tokens_details"]["reasoning_tokens"] == 5
    assert "cached_tokens" in usage["prompt_tokens_details"]
    off = post(openrouter, req(OR_MODEL, reasoning={"effort": "none"})).json()
    assert off["choices"][0]["message"]["reasoning"] is None
    hidden = post(openrouter, req(OR_MODEL, reasoning={"exclude": True})).json()
    assert hidden["choices"][0]["message"]["reasoning"] is None
    assert hidden["usage"]["completion_tokens_details"]["reasoning_tokens"] == 5


def test_openrouter_stream_and_midstream_error(openrouter: SimulatedOpenRouter) -> None:
    text = post(openrouter, req(OR_MODEL, stream=True)).text
    assert sse_lines(text)[0] == ": OPENROUTER PROCESSING"
    events = data_events(text)
    assert events[-2]["choices"] == [] and "cost" in events[-2]["usage"]  # without include_usage
    assert streamed_text(events, "reasoning") == "thinking about: hello big world"
    openrouter.faults.midstream_error_after = 2
    events = data_events(post(openrouter, req(OR_MODEL, stream=True)).text)
    assert len(events) == 3 and "[DONE]" not in events
    assert events[-1]["error"]["code"] == 502
    assert events[-1]["choices"][0]["finish_reason"] == "error"


# --------------------------------------------------------------------------- Ollama


def test_ollama_dialect(ollama: SimulatedOllama) -> None:
    r = post(ollama, req(DS_MODEL), headers={"x-api-key": ollama.key})
    assert r.status_code == 401 and r.json() == {"error": "unauthorized"}
    r = post(ollama, req("deepseek-v4-flash:cloud"))
    assert r.status_code == 404 and "try pulling it first" in r.json()["error"]
    body = post(ollama, req(DS_MODEL, thinking={"type": "disabled"})).json()
    assert body["choices"][0]["message"]["reasoning"].startswith("thinking about:")
    assert set(body["usage"]) == {"prompt_tokens", "completion_tokens", "total_tokens"}
    off = post(ollama, req(DS_MODEL, reasoning_effort="none")).json()
    assert off["choices"][0]["message"]["reasoning"] is None
    assert post(ollama, req(DS_MODEL, reasoning_effort="max")).status_code == 400  # V4
    assert post(ollama, req("deepseek-v4.1-flash", reasoning_effort="max")).status_code == 200
    tags = httpx.get(ollama.base_url + "/api/tags").json()
    assert DS_MODEL in [m["name"] for m in tags["models"]]
    with SimulatedOllama(accept_cloud_suffix=True) as cloud:
        assert post(cloud, req("deepseek-v4-flash:cloud")).status_code == 200


def test_ollama_parallel_tool_calls_all_index_zero(ollama: SimulatedOllama) -> None:
    body = req(DS_MODEL, "do both in parallel", tools=TOOLS, stream=True)
    events = data_events(post(ollama, body).text)
    fragments = [tc for e in events if isinstance(e, dict)
                 for tc in e["choices"][0]["delta"].get("tool_calls", [])]
    assert {f["index"] for f in fragments} == {0}
    ids = [f["id"] for f in fragments if "id" in f]
    assert len(ids) == 2 and len(set(ids)) == 2
    assert not any("usage" in e for e in events if isinstance(e, dict))


def test_ollama_native_chat(ollama: SimulatedOllama) -> None:
    r = httpx.post(ollama.base_url + "/api/chat", json=req(DS_MODEL, "hi there"),
                   headers={"Authorization": f"Bearer {ollama.key}"})
    lines = [orjson.loads(line) for line in r.text.splitlines()]
    assert "".join(x["message"].get("thinking", "") for x in lines) == "thinking about: hi there"
    assert "".join(x["message"]["content"] for x in lines) == "echo: hi there"
    assert lines[-1]["done"] is True and lines[-1]["eval_count"] == 7


def test_ollama_midstream_error(ollama: SimulatedOllama) -> None:
    ollama.faults.midstream_error_after = 1
    r = post(ollama, req(DS_MODEL, stream=True))
    assert r.status_code == 200
    assert data_events(r.text)[-1] == {"error": "an error was encountered while running the model"}


# --------------------------------------------------------------------------- faults


def test_forced_status_with_retry_after_and_times(ollama: SimulatedOllama) -> None:
    ollama.faults = Faults(status=503, status_times=1, retry_after=2)
    r = post(ollama, req(DS_MODEL))
    assert r.status_code == 503 and r.headers["Retry-After"] == "2"
    assert post(ollama, req(DS_MODEL)).status_code == 200
    # Ollama's usage limit says nothing of when it ends (PROVIDERS.md; issue 12): no
    # Retry-After even when the fault asks for one.
    ollama.faults = Faults(status=429, status_times=1, retry_after=2)
    r = post(ollama, req(DS_MODEL))
    assert r.status_code == 429 and "Retry-After" not in r.headers
    assert "session usage limit" in r.json()["error"]
    assert post(ollama, req(DS_MODEL)).status_code == 200


def test_forced_status_shapes(deepseek: SimulatedDeepSeek, openrouter: SimulatedOpenRouter) -> None:
    deepseek.faults.status = 402
    assert post(deepseek, req(DS_MODEL)).json()["error"]["message"] == "Insufficient Balance"
    openrouter.faults.status = 503
    r = post(openrouter, req(OR_MODEL))
    assert r.status_code == 503 and r.json()["error"]["code"] == 503


def test_reset_and_garbage(deepseek: SimulatedDeepSeek) -> None:
    deepseek.faults.reset = True
    with pytest.raises(httpx.TransportError):
        post(deepseek, req(DS_MODEL))
    deepseek.faults = Faults(garbage=True)
    r = post(deepseek, req(DS_MODEL))
    assert r.status_code == 200
    with pytest.raises(ValueError):
        r.json()
    events = sse_lines(post(deepseek, req(DS_MODEL, stream=True)).text)
    assert any(line.startswith("data: this is not json") for line in events)


def test_cut_stream(deepseek: SimulatedDeepSeek) -> None:
    deepseek.faults.cut_after_chunks = 3
    seen: list[str] = []
    with pytest.raises(httpx.TransportError), httpx.stream(
        "POST", chat_url(deepseek), json=req(DS_MODEL, stream=True),
        headers={"Authorization": f"Bearer {deepseek.key}"},
    ) as r:
        seen.extend(line for line in r.iter_lines() if line.startswith("data:"))
    assert len(seen) == 3


def test_deepseek_midstream_error(deepseek: SimulatedDeepSeek) -> None:
    deepseek.faults.midstream_error_after = 2
    events = data_events(post(deepseek, req(DS_MODEL, stream=True)).text)
    assert events[-1] == "[DONE]"
    assert events[-2]["choices"][0]["finish_reason"] == "insufficient_system_resource"


def test_hang_and_first_byte_delay(openrouter: SimulatedOpenRouter) -> None:
    openrouter.faults.hang_seconds = 3
    with pytest.raises(httpx.ReadTimeout):
        post(openrouter, req(OR_MODEL), timeout=0.2)
    openrouter.faults = Faults(first_byte_delay=0.3)
    start = time.perf_counter()
    with httpx.stream("POST", chat_url(openrouter), json=req(OR_MODEL, stream=True),
                      headers={"Authorization": f"Bearer {openrouter.key}"}) as r:
        headers_at = time.perf_counter() - start
        r.read()
        body_at = time.perf_counter() - start
    assert headers_at < 0.25 <= body_at


def test_client_disconnect_is_counted(ollama: SimulatedOllama) -> None:
    ollama.faults.chunk_delay_ms = 5
    long_text = " ".join(["word"] * 300)
    with httpx.stream("POST", chat_url(ollama), json=req(DS_MODEL, long_text, stream=True),
                      headers={"Authorization": f"Bearer {ollama.key}"}) as r:
        next(r.iter_lines())
    deadline = time.monotonic() + 3
    while ollama.disconnects == 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert ollama.disconnects == 1


def test_control_endpoints(openrouter: SimulatedOpenRouter) -> None:
    control = openrouter.server_url + "/_sim/"
    assert httpx.post(control + "faults", json={"status": 502}).status_code == 200
    assert openrouter.faults.status == 502
    assert post(openrouter, req(OR_MODEL)).status_code == 502
    assert httpx.post(control + "faults", json={"bogus": 1}).status_code == 400
    recorded = httpx.get(control + "requests").json()
    assert recorded[-1]["path"] == "/api/v1/chat/completions"
    assert recorded[-1]["json"]["model"] == OR_MODEL
    assert recorded[-1]["headers"]["Authorization"] == f"Bearer {openrouter.key}"
    httpx.post(control + "reset")
    assert httpx.get(control + "requests").json() == []
    assert openrouter.faults == Faults()


# --------------------------------------------------------------------------- scripted turns


WRITE_TOOL = {"type": "function", "function": {"name": "Write", "parameters": {
    "type": "object", "properties": {"file_path": {"type": "string"},
                                     "content": {"type": "string"}}}}}


def test_deepseek_scripted_agent_turns(deepseek: SimulatedDeepSeek) -> None:
    """A script answers the user's turn with a call to the named tool, the tool's result with
    text; streamed in DeepSeek's wire format, and the thinking-mode rules still apply."""
    args = {"file_path": "/tmp/x/hello.txt", "content": "hi there\n"}
    deepseek.script = Script(tool="Write", arguments=args, text="All done.")
    tools = [TOOLS[0], WRITE_TOOL]
    # Claude Code's turns end with a system message after the user's: still the user's turn.
    first: list[dict[str, Any]] = [{"role": "system", "content": "be an agent"},
                                   {"role": "user", "content": "write hello"},
                                   {"role": "system", "content": "env: linux"}]
    body = {"model": DS_MODEL, "messages": first, "tools": tools}
    choice = post(deepseek, body).json()["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    message = choice["message"]
    assert message["content"] is None
    assert message["reasoning_content"] == "thinking about: write hello"
    [call] = message["tool_calls"]
    assert call["type"] == "function" and call["id"].startswith("call_")
    assert call["function"]["name"] == "Write"
    assert orjson.loads(call["function"]["arguments"]) == args

    stream = dict(body, stream=True, stream_options={"include_usage": True})
    events = data_events(post(deepseek, stream).text)
    assert events[-1] == "[DONE]"
    usage = events[-2]["usage"]
    assert events[-2]["choices"] == [] and usage["completion_tokens"] > 0
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    deltas = [e["choices"][0] for e in events if isinstance(e, dict) and e["choices"]]
    assert deltas[-1]["finish_reason"] == "tool_calls"
    fragments = [tc for d in deltas for tc in d["delta"].get("tool_calls", [])]
    head = fragments[0]
    assert head["index"] == 0 and head["type"] == "function" and head["id"].startswith("call_")
    assert head["function"] == {"name": "Write", "arguments": ""}
    assert len(fragments) > 2 and all(f["index"] == 0 for f in fragments)
    streamed = "".join(f["function"].get("arguments", "") for f in fragments)
    assert orjson.loads(streamed) == args
    assert streamed_text(events, "reasoning_content") == "thinking about: write hello"

    # The tool's result: text. DeepSeek still wants reasoning_content echoed on the call turn.
    assistant = {"role": "assistant", "content": None, "tool_calls": [call]}
    result = {"role": "tool", "tool_call_id": call["id"], "content": "File created"}
    second = {"model": DS_MODEL, "messages": [*first, assistant, result], "tools": tools}
    refused = post(deepseek, second)
    assert refused.status_code == 400 and "message index 3" in refused.json()["error"]["message"]
    assistant["reasoning_content"] = message["reasoning_content"]
    answer = post(deepseek, second).json()["choices"][0]
    assert answer["finish_reason"] == "stop" and answer["message"]["content"] == "All done."
    assert "tool_calls" not in answer["message"]
    events = data_events(post(deepseek, dict(second, stream=True)).text)
    assert streamed_text(events, "content") == "All done."
    assert [e["choices"][0]["finish_reason"] for e in events[-2:-1]] == ["stop"]

    # Without the tool on offer, or with tool_choice none, the answer is the usual echo.
    plain = post(deepseek, req(DS_MODEL, "hi", tools=TOOLS)).json()["choices"][0]
    assert plain["message"]["tool_calls"][0]["function"]["name"] == "get_weather"
    none = post(deepseek, dict(body, tool_choice="none")).json()["choices"][0]
    assert none["message"]["content"] == "echo: write hello"


def test_script_control_endpoint(deepseek: SimulatedDeepSeek) -> None:
    control = deepseek.server_url + "/_sim/script"
    assert httpx.get(control).json() is None
    raw = '{"file_path": "/x", '  # a string is sent verbatim: tests can send broken JSON
    r = httpx.post(control, json={"tool": "Write", "arguments": raw, "text": "ok"})
    assert r.status_code == 200 and deepseek.script == Script("Write", raw, "ok")
    body = req(DS_MODEL, "go", tools=[WRITE_TOOL], thinking={"type": "disabled"})
    message = post(deepseek, body).json()["choices"][0]["message"]
    assert message["tool_calls"][0]["function"]["arguments"] == raw
    assert message["reasoning_content"] is None
    assert httpx.post(control, json={"tool": "Write", "bogus": 1}).status_code == 400
    assert httpx.post(control, json={"arguments": {}}).status_code == 400
    assert httpx.post(control, json={"tool": "Write", "arguments": [1]}).status_code == 400
    assert httpx.get(control).json()["tool"] == "Write"
    assert httpx.delete(control).status_code == 200 and deepseek.script is None
    deepseek.script = Script("Write")
    httpx.post(deepseek.server_url + "/_sim/reset")
    assert deepseek.script is None
