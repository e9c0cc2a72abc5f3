"""Claude Code (pinned in tests/agents) through a real gateway to the simulated DeepSeek.

Claude Code speaks Anthropic Messages (POST /v1/messages, streamed); the gateway translates
to DeepSeek's chat API. DeepSeek is scripted: the user's turn gets a call to Claude Code's
file-writing tool (Write), the turn carrying its result gets text. The test passes when the
file is on disk with the content and `claude -p --output-format json` reports no error.
A missing install is a failure that says to run `make test`, never a skip.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.agents import claude_code
from tests.e2e.agent_requests import chat_requests, summary
from tests.e2e.conftest import GatewayFactory, Upstreams
from tests.upstream.common import Script, last_turn_role

MODEL = "deepseek-v4-flash"
TOKEN = "sk-e2e-claude-code"  # the test gateway has no master key: any loopback token is admin
WRITE_TOOL = "Write"  # Claude Code's file-writing tool: {"file_path": absolute, "content": str}
CONTENT = "Hello from Claude Code, through Switchyard, to DeepSeek.\n"
FINAL_TEXT = "I wrote hello.txt."


def require_claude_code() -> Path:
    """The installed binary; a missing install fails the test (and says how to install)."""
    try:
        return claude_code.locate()
    except claude_code.ClaudeCodeMissing as exc:
        missing = str(exc)
    pytest.fail(missing, pytrace=False)


def test_claude_code_writes_a_file_through_the_gateway(
    make_gateway: GatewayFactory, upstreams: Upstreams, tmp_path: Path
) -> None:
    require_claude_code()
    gateway = make_gateway(["deepseek"])
    work, home = tmp_path / "work", tmp_path / "home"
    work.mkdir()
    target = work / "hello.txt"
    upstreams.deepseek.script = Script(
        tool=WRITE_TOOL, arguments={"file_path": str(target), "content": CONTENT},
        text=FINAL_TEXT)

    run = claude_code.run(
        f"Create the file hello.txt in the current directory containing: {CONTENT.strip()}",
        base_url=gateway.url, token=TOKEN, cwd=work, home=home, model=MODEL, timeout=60)

    sent = chat_requests(upstreams)
    context = f"{run.describe()}\nDeepSeek saw:\n{summary(sent)}"
    if not run.ok:
        pytest.fail(f"Claude Code did not finish cleanly\n{context}", pytrace=False)
    assert target.is_file(), f"Claude Code did not write {target}\n{context}"
    assert target.read_text() == CONTENT, context
    assert run.result == FINAL_TEXT, context
    output = run.output or {}
    assert output.get("permission_denials") == [], context
    # The loop went through DeepSeek: the user's turn (answered with the tool call), then
    # the turn with the tool's result (answered with the text), all for the model asked for.
    roles = [last_turn_role(body["messages"]) for body in sent]
    assert "user" in roles and "tool" in roles, context
    # DeepSeek gets its own name for the generation (issue 12): V4.1-Flash is deepseek-flash
    assert all(body.get("model") == "deepseek-flash" for body in sent), context
    assert run.phone_home == [], f"Claude Code tried to leave the machine\n{context}"
    assert run.seconds < 60
