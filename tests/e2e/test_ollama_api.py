"""Ollama's own API end to end: the official `ollama` Python client and the pinned `ollama` npm
package, over real HTTP, through a gateway whose Ollama Cloud upstream is out of capacity.

The gateway tries Ollama Cloud first (as a user of `deepseek-v4-flash:cloud` would configure
it). The simulated Ollama Cloud answers its session usage-limit 429, a string error with no
Retry-After (PROVIDERS.md), so every call fails over to DeepSeek, and the clients get their
answers in Ollama's shapes: whole and NDJSON-streamed chat, tools, thinking, generate, the
model list and details.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import httpx
import ollama
import orjson
import pytest

from tests.e2e.conftest import GatewayFactory, RunningGateway, Upstreams
from tests.upstream.common import Faults
from tests.upstream.ollama import MESSAGES as OLLAMA_ERRORS

MODEL = "deepseek-v4-flash:cloud"
AGENTS = Path(__file__).resolve().parents[1] / "agents"
# A breaker that never opens (the usage limit takes Ollama out regardless: issue 12).
ROUTING = ("routing:\n  backoff_base: 0.01\n  backoff_max: 0.05\n"
           "  breaker: {consecutive_failures: 1000, min_requests: 100000}\n")
WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "Weather for a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                   "required": ["city"]}}}
STATS = ("done_reason", "total_duration", "load_duration", "prompt_eval_count",
         "prompt_eval_duration", "eval_count", "eval_duration")


@pytest.fixture
def gateway(make_gateway: GatewayFactory, upstreams: Upstreams) -> RunningGateway:
    """Ollama Cloud first, out of its usage limit; DeepSeek second."""
    upstreams.ollama.faults = Faults(status=429)
    return make_gateway(["ollama", "deepseek"], yaml=ROUTING)


def client(gateway: RunningGateway, token: str = "unused-on-loopback") -> ollama.Client:
    return ollama.Client(host=gateway.url, headers={"Authorization": f"Bearer {token}"},
                         timeout=20)


def calls(gateway: RunningGateway) -> list[Any]:
    """The usage events of calls (local answers such as /api/tags record none)."""
    return [e for e in gateway.sink.events if e.request_id]


def deepseek_sent(upstreams: Upstreams) -> dict[str, Any]:
    body: dict[str, Any] = upstreams.deepseek.requests[-1].json
    return body


def assert_failed_over(gateway: RunningGateway, upstreams: Upstreams, api: str = "ollama.chat",
                       stream: bool = False) -> None:
    event = calls(gateway)[-1]
    assert event.api == api and event.status == "ok" and event.stream is stream
    assert event.provider == "deepseek" and event.model == "deepseek-v4-flash"
    # The usage limit takes the Ollama account out (issue 12): the gateway's first call fails
    # over from its 429, later ones go straight to DeepSeek.
    first = calls(gateway)[0]
    assert first.attempts == [("ollama", "429"), ("deepseek", "200")]
    if event is not first:
        assert event.attempts == [("deepseek", "200")]
    assert len(upstreams.ollama.requests) == 1
    assert event.usage is not None and event.usage.completion_tokens > 0
    refused = upstreams.ollama.requests[-1]
    assert refused.path == "/v1/chat/completions"


def test_the_usage_limit_429_has_no_retry_after(gateway: RunningGateway,
                                                upstreams: Upstreams) -> None:
    """The premise: what the gateway fails over from (PROVIDERS.md's usage-limit answer)."""
    with httpx.Client(base_url=upstreams.ollama.base_url, timeout=10) as http:
        response = http.post("/v1/chat/completions", json={
            "model": "deepseek-v4-flash", "messages": [{"role": "user", "content": "x"}]},
            headers={"Authorization": f"Bearer {upstreams.ollama.key}"})
    assert response.status_code == 429
    assert "retry-after" not in response.headers
    assert response.json() == {"error": OLLAMA_ERRORS[429]}
    assert "session usage limit" in response.json()["error"]


def test_chat_whole(gateway: RunningGateway, upstreams: Upstreams) -> None:
    answer = client(gateway).chat(model=MODEL, messages=[
        {"role": "system", "content": "be brief"}, {"role": "user", "content": "hello there"}],
        options={"temperature": 0.3, "num_predict": 100})
    assert answer.model == MODEL
    assert answer.message.role == "assistant"
    assert answer.message.content == "echo: hello there"
    assert answer.message.thinking == "thinking about: hello there"  # thinks by default
    assert answer.done is True and answer.done_reason == "stop"
    assert answer.prompt_eval_count == 4 and answer.eval_count == 7
    assert answer.total_duration and answer.eval_duration
    assert answer.total_duration >= answer.eval_duration
    assert_failed_over(gateway, upstreams)
    sent = deepseek_sent(upstreams)
    assert sent["model"] == "deepseek-flash"  # DeepSeek's name for V4.1-Flash
    assert sent["temperature"] == 0.3 and sent["max_tokens"] == 100


def test_chat_stream(gateway: RunningGateway, upstreams: Upstreams) -> None:
    parts = list(client(gateway).chat(
        model=MODEL, messages=[{"role": "user", "content": "stream this please"}],
        think=True, stream=True))
    assert len(parts) > 2
    assert all(p.done is False for p in parts[:-1]) and parts[-1].done is True
    assert "".join(p.message.content or "" for p in parts) == "echo: stream this please"
    assert "".join(p.message.thinking or "" for p in parts) == \
        "thinking about: stream this please"
    final = parts[-1]
    assert final.done_reason == "stop" and final.eval_count == 9
    assert final.prompt_eval_count == 3
    assert final.total_duration is not None and final.prompt_eval_duration is not None
    assert final.eval_duration is not None
    assert final.total_duration == final.prompt_eval_duration + final.eval_duration
    assert_failed_over(gateway, upstreams, stream=True)
    assert deepseek_sent(upstreams)["stream"] is True


@pytest.mark.parametrize("streamed", [False, True])
def test_tool_loop_with_thinking(gateway: RunningGateway, upstreams: Upstreams,
                                 streamed: bool) -> None:
    """The python client's tool loop: the answer's message goes back as it came (arguments
    an object, thinking kept, no call ids), then a `tool` message named after the tool.
    DeepSeek in thinking mode refuses a tool-call turn without its reasoning_content."""
    api = client(gateway)
    messages: list[Any] = [{"role": "user", "content": "weather in Paris"}]
    if streamed:
        parts = list(api.chat(model=MODEL, messages=messages, tools=[WEATHER], stream=True))
        tool_parts = [p for p in parts if p.message.tool_calls]
        assert len(tool_parts) == 1  # one line holds the whole call
        message = tool_parts[0].message
        message.thinking = "".join(p.message.thinking or "" for p in parts)
        assert parts[-1].done_reason == "stop"
    else:
        first = api.chat(model=MODEL, messages=messages, tools=[WEATHER])
        message = first.message
        assert first.done_reason == "stop"
    assert message.tool_calls is not None and len(message.tool_calls) == 1
    call = message.tool_calls[0]
    assert call.function.name == "get_weather"
    assert call.function.arguments == {"echo": "weather in Paris"}  # an object, not text
    assert message.thinking == "thinking about: weather in Paris"
    messages += [message, {"role": "tool", "content": "sunny, 21 C",
                           "tool_name": call.function.name}]
    second = api.chat(model=MODEL, messages=messages, tools=[WEATHER])
    assert second.message.content == "echo: weather in Paris"
    sent = deepseek_sent(upstreams)["messages"]
    assert sent[-2]["reasoning_content"] == "thinking about: weather in Paris"
    assert orjson.loads(sent[-2]["tool_calls"][0]["function"]["arguments"]) == {
        "echo": "weather in Paris"}
    assert sent[-1] == {"role": "tool", "tool_call_id": sent[-2]["tool_calls"][0]["id"],
                        "content": "sunny, 21 C"}
    assert_failed_over(gateway, upstreams)


@pytest.mark.parametrize("think, effort", [(False, None), ("low", "low"), ("max", "max")])
def test_think_reaches_deepseek(gateway: RunningGateway, upstreams: Upstreams,
                                think: bool | str, effort: str | None) -> None:
    answer = client(gateway).chat(model=MODEL, think=think,
                                  messages=[{"role": "user", "content": "quick one"}])
    sent = deepseek_sent(upstreams)
    if think is False:
        assert sent["thinking"] == {"type": "disabled"}
        assert answer.message.thinking is None
    else:
        assert sent["thinking"] == {"type": "enabled"}
        assert sent["reasoning_effort"] == effort
        assert answer.message.thinking == "thinking about: quick one"


def test_format_json(gateway: RunningGateway, upstreams: Upstreams) -> None:
    answer = client(gateway).chat(model=MODEL, format="json", think=False,
                                  messages=[{"role": "user", "content": "as json"}])
    assert json.loads(answer.message.content or "") == {"echo": "as json"}
    assert deepseek_sent(upstreams)["response_format"] == {"type": "json_object"}


def test_generate(gateway: RunningGateway, upstreams: Upstreams) -> None:
    api = client(gateway)
    whole = api.generate(model=MODEL, prompt="why is the sky blue", system="be a physicist")
    assert whole.response == "echo: why is the sky blue"
    assert whole.thinking == "thinking about: why is the sky blue"
    assert whole.done and whole.done_reason == "stop"
    assert_failed_over(gateway, upstreams, api="ollama.generate")
    assert deepseek_sent(upstreams)["messages"] == [
        {"role": "system", "content": "be a physicist"},
        {"role": "user", "content": "why is the sky blue"}]
    parts = list(api.generate(model=MODEL, prompt="stream it", stream=True, think=False))
    assert "".join(p.response or "" for p in parts) == "echo: stream it"
    assert parts[-1].done and parts[-1].eval_count
    assert_failed_over(gateway, upstreams, api="ollama.generate", stream=True)


def test_list_show_and_ps(gateway: RunningGateway) -> None:
    api = client(gateway)
    names = [m.model for m in api.list().models]
    assert "deepseek-v4-flash:cloud" in names and "deepseek-v4-pro:cloud" in names
    assert "deepseek-v4-flash" in names and "deepseek-chat" in names
    shown = api.show(MODEL)
    assert shown.capabilities == ["completion", "tools", "thinking"]
    assert shown.modelinfo is not None
    assert shown.modelinfo["deepseek.context_length"] == 1_048_576
    assert shown.details is not None and shown.details.family == "deepseek"
    running = api.ps().models
    assert {m.model for m in running} == set(names)
    assert calls(gateway) == []  # answered by the gateway: no upstream, no usage row


def test_errors_in_ollamas_shape(gateway: RunningGateway) -> None:
    api = client(gateway)
    with pytest.raises(ollama.ResponseError) as caught:
        api.chat(model="llama3.2", messages=[{"role": "user", "content": "x"}])
    assert caught.value.status_code == 404
    assert caught.value.error.startswith('model "llama3.2" not found')
    with pytest.raises(ollama.ResponseError) as caught:
        api.show("llama3.2")
    assert caught.value.status_code == 404
    for manage in (lambda: api.pull(MODEL), lambda: api.delete(MODEL),
                   lambda: api.copy(MODEL, "mine"), lambda: api.create(model="x", from_=MODEL)):
        with pytest.raises(ollama.ResponseError) as caught:
            manage()
        assert caught.value.status_code == 400
        assert "serves its models remotely" in caught.value.error
    with pytest.raises(ollama.ResponseError) as caught:
        api.embed(model=MODEL, input="x")
    assert caught.value.status_code == 400 and "chat models only" in caught.value.error


def test_every_upstream_failing_is_an_ollama_error(gateway: RunningGateway,
                                                  upstreams: Upstreams) -> None:
    upstreams.deepseek.faults = Faults(status=503)
    with pytest.raises(ollama.ResponseError) as caught:
        client(gateway).chat(model=MODEL, messages=[{"role": "user", "content": "x"}])
    event = calls(gateway)[-1]
    assert event.status == "error" and event.api == "ollama.chat"
    assert event.attempts[:2] == [("ollama", "429"), ("deepseek", "503")]
    last = event.attempts[-1]  # the client sees the last failure, as on every surface
    assert caught.value.status_code == int(last[1])
    assert caught.value.error.startswith(f"{last[0]}: ")


def test_a_failure_mid_stream_is_a_final_error_line(gateway: RunningGateway,
                                                    upstreams: Upstreams) -> None:
    upstreams.deepseek.faults = Faults(midstream_error_after=4)
    body = {"model": MODEL, "messages": [{"role": "user", "content": "a long answer please"}]}
    with httpx.Client(base_url=gateway.url, timeout=20) as http:
        response = http.post("/api/chat", json=body)  # `stream` absent: NDJSON
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/x-ndjson"
    lines = [orjson.loads(line) for line in response.text.splitlines()]
    assert [line["done"] for line in lines[:-1]] == [False] * (len(lines) - 1)
    assert list(lines[-1]) == ["error"]
    with pytest.raises(ollama.ResponseError):
        list(client(gateway).chat(model=MODEL, stream=True, messages=body["messages"]))
    assert calls(gateway)[-1].status == "interrupted"


def test_the_final_line_has_the_fields_of_ollama_clouds_own(
        make_gateway: GatewayFactory, upstreams: Upstreams) -> None:
    """Ollama Cloud's native /api/chat (simulated) and the gateway's, line by line: the same
    keys on the streamed lines and on the final one."""
    gateway = make_gateway(["deepseek"])
    body = {"model": "deepseek-v4-flash", "messages": [{"role": "user", "content": "hi you"}]}
    with httpx.Client(timeout=20) as http:
        ours = http.post(gateway.url + "/api/chat", json=body)
        native = http.post(upstreams.ollama.base_url + "/api/chat", json=body,
                           headers={"Authorization": f"Bearer {upstreams.ollama.key}"})
    assert ours.headers["content-type"] == native.headers["content-type"]
    ours_lines = [orjson.loads(line) for line in ours.text.splitlines()]
    native_lines = [orjson.loads(line) for line in native.text.splitlines()]
    assert set(ours_lines[-1]) == set(native_lines[-1])
    assert set(STATS) <= set(ours_lines[-1])
    assert {frozenset(line) for line in ours_lines[:-1]} == \
        {frozenset(line) for line in native_lines[:-1]}
    assert ours_lines[-1]["done_reason"] == native_lines[-1]["done_reason"] == "stop"
    assert ours_lines[-1]["eval_count"] == native_lines[-1]["eval_count"]


def test_auth_is_the_gateways_on_every_endpoint(make_gateway: GatewayFactory) -> None:
    gateway = make_gateway(["deepseek"], env={"GATEWAY_MASTER_KEY": "sk-master"})
    body = {"model": MODEL, "messages": [{"role": "user", "content": "x"}], "stream": False}
    with httpx.Client(base_url=gateway.url, timeout=20) as http:
        for method, path, payload in [("POST", "/api/chat", body), ("GET", "/api/tags", None),
                                      ("POST", "/api/show", {"model": MODEL}),
                                      ("GET", "/api/version", None), ("GET", "/api/ps", None),
                                      ("POST", "/api/pull", {"model": MODEL})]:
            refused = http.request(method, path, json=payload)
            assert refused.status_code == 401, path
            assert set(refused.json()) == {"error"}, path
        assert http.head("/api/tags").status_code == 401
    api = client(gateway, token="sk-master")
    assert api.chat(model=MODEL, messages=body["messages"]).message.content == "echo: x"
    assert api.list().models
    with httpx.Client(base_url=gateway.url, timeout=20,
                      headers={"Authorization": "Bearer sk-master"}) as http:
        version = http.get("/api/version")
        head = http.head("/api/tags")
    assert version.status_code == 200 and set(version.json()) == {"version"}
    assert head.status_code == 200 and head.content == b""


def test_the_npm_client_chats_and_streams(gateway: RunningGateway,
                                          upstreams: Upstreams) -> None:
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is not installed (Debian: apt-get install nodejs npm)", pytrace=False)
    pinned = json.loads((AGENTS / "package.json").read_text())["dependencies"]["ollama"]
    installed = AGENTS / "node_modules" / "ollama" / "package.json"
    if not installed.is_file() or json.loads(installed.read_text())["version"] != pinned:
        pytest.fail(f"the ollama npm package {pinned} is not installed in tests/agents: run "
                    "`make test` (npm ci --prefix tests/agents)", pytrace=False)
    run = subprocess.run([node, str(AGENTS / "ollama_js.mjs"), gateway.url, "sk-node", MODEL],
                         capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert run.returncode == 0, f"stdout: {run.stdout}\nstderr: {run.stderr}"
    result = json.loads(run.stdout)
    chat = result["chat"]
    assert chat["model"] == MODEL and chat["done"] is True
    assert chat["message"]["content"] == "echo: hello from node"
    stream = result["stream"]
    assert stream["lines"] > 2
    assert stream["content"] == "echo: stream from node"
    assert stream["thinking"] == "thinking about: stream from node"
    assert stream["final"]["done"] is True and stream["final"]["done_reason"] == "stop"
    assert set(STATS) <= set(stream["final"])
    assert_failed_over(gateway, upstreams, stream=True)
    assert len(calls(gateway)) == 2
