"""Codex CLI (pinned in tests/agents) through a real gateway to the simulated DeepSeek.

Codex speaks only the Responses API (POST /v1/responses, streamed, `store: false`); the
gateway translates to DeepSeek's chat API. DeepSeek is scripted: the user's turn gets a call
to Codex's shell tool (`exec_command`, arguments `{"cmd": ...}`) whose command writes a file,
the turn carrying the command's output gets text. The test passes when the file is on disk
with the content and `codex exec` exits 0. A missing install is a failure that says to run
`make test`, never a skip.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest

from tests.agents import codex
from tests.e2e.agent_requests import chat_requests, summary
from tests.e2e.conftest import GatewayFactory, Upstreams
from tests.upstream.common import Script, last_turn_role

MODEL = "deepseek-v4-flash"
TOKEN = "sk-e2e-codex"  # the test gateway has no master key: any loopback token is admin
SHELL_TOOL = "exec_command"  # Codex's shell tool: {"cmd": str, "workdir"?: str, ...}
CONTENT = "Hello from Codex, through Switchyard, to DeepSeek."
FINAL_TEXT = "I wrote hello.txt."


def require_codex() -> Path:
    """The installed binary; a missing install fails the test (and says how to install)."""
    try:
        return codex.locate()
    except codex.CodexMissing as exc:
        missing = str(exc)
    pytest.fail(missing, pytrace=False)


def test_codex_runs_a_shell_command_through_the_gateway(
    make_gateway: GatewayFactory, upstreams: Upstreams, tmp_path: Path
) -> None:
    require_codex()
    gateway = make_gateway(["deepseek"])
    work, home = tmp_path / "work", tmp_path / "home"
    work.mkdir()
    target = work / "hello.txt"
    command = f"printf %s {shlex.quote(CONTENT)} > hello.txt"
    upstreams.deepseek.script = Script(tool=SHELL_TOOL, arguments={"cmd": command},
                                       text=FINAL_TEXT)

    run = codex.run(f"Create the file hello.txt containing: {CONTENT}",
                    base_url=gateway.url, token=TOKEN, cwd=work, home=home, model=MODEL,
                    timeout=90)

    sent = chat_requests(upstreams)
    context = f"{run.describe()}\nDeepSeek saw:\n{summary(sent)}"
    assert run.returncode == 0, f"codex did not exit 0\n{context}"
    assert run.ok, f"codex did not finish its turn\n{context}"
    assert target.is_file(), f"codex did not write {target}\n{context}"
    assert target.read_text() == CONTENT, context
    commands = run.items("command_execution")
    assert [c.get("exit_code") for c in commands] == [0], context
    assert [m.get("text") for m in run.items("agent_message")] == [FINAL_TEXT], context
    # The loop went through DeepSeek: the user's turn (answered with the shell call), then
    # the turn with the command's output (answered with the text), for the model asked for,
    # each a streamed Responses call metered as such.
    assert [last_turn_role(body["messages"]) for body in sent] == ["user", "tool"], context
    # DeepSeek gets its own name for the generation (issue 12): V4.1-Flash is deepseek-flash
    assert all(body.get("model") == "deepseek-flash" and body.get("stream") for body in sent), \
        context
    tool_turn = sent[1]["messages"]
    assert tool_turn[-2]["tool_calls"][0]["function"]["name"] == SHELL_TOOL, context
    events = [e for e in gateway.sink.events if e.request_id]
    assert [(e.api, e.stream, e.status) for e in events] == [
        ("openai.responses", True, "ok")] * 2, context
    assert run.phone_home == [], f"Codex tried to leave the machine\n{context}"
    assert run.seconds < 90


def test_codex_with_web_search_on_is_told_how_to_turn_it_off(
    make_gateway: GatewayFactory, upstreams: Upstreams, tmp_path: Path
) -> None:
    """Codex offers OpenAI's built-in web_search unless told not to; the gateway cannot run
    it, and the refusal Codex shows says which setting to change."""
    require_codex()
    gateway = make_gateway(["deepseek"])
    work = tmp_path / "work"
    work.mkdir()
    run = codex.run("Search the web for nothing.", base_url=gateway.url, token=TOKEN, cwd=work,
                    home=tmp_path / "home", model=MODEL, timeout=60,
                    args=["-c", 'web_search="cached"'])
    failed = [e for e in run.events if e.get("type") == "turn.failed"]
    assert run.returncode == 1 and failed, run.describe()
    shown = failed[0]["error"]["message"]  # Codex shows the gateway's error body
    error = json.loads(shown)["error"]
    assert error["param"].startswith("tools[") and error["param"].endswith("].type"), shown
    assert "'web_search'" in error["message"], shown
    assert 'set `web_search = "disabled"` in config.toml' in error["message"], shown
    assert chat_requests(upstreams) == [], "a refused request reached DeepSeek"
    assert run.phone_home == [], run.describe()
