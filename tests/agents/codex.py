"""Codex CLI, the pinned `@openai/codex` in tests/agents, run the way a CI job would:
`codex exec --json <task>`, non-interactive, offline, with a throwaway HOME and CODEX_HOME.

`make test` installs it (`npm ci --prefix tests/agents`); `locate()` raises CodexMissing with
that instruction when it is not there. The npm package is a Node launcher (`bin/codex.js`)
around a native binary shipped in a platform package (`@openai/codex-linux-x64`, an alias of
`@openai/codex@<version>-linux-x64`); the native binary is run directly, so Node is only
needed to install.

Codex reads its provider from `$CODEX_HOME/config.toml` (`config_toml`): a provider whose
`base_url` is the gateway's `/v1`, `wire_api = "responses"` (the only wire API it still
speaks) and `env_key` naming the variable that holds the key (sent as `Authorization:
Bearer`). The same file turns off what would leave the machine: analytics (`ab.chatgpt.com`),
the plugin marketplace sync (`github.com`, `api.github.com`, `chatgpt.com`) and the update
check; and the built-in web_search tool, which the gateway refuses. As with Claude Code,
HTTP(S)_PROXY points at a `PhoneHomeTrap` so any other attempt is recorded, not made.

What Codex 0.171.0 sends (captured with a logging fake Responses server):
- Only `POST {base_url}/responses`, always `stream: true`, `Accept: text/event-stream`;
  no `/models`, no websockets, no `/responses/compact` for a custom provider. Headers:
  `Authorization: Bearer <env_key's value>`, `originator: codex_exec`, `User-Agent:
  codex_exec/0.171.0 (...)`, `session-id`, `thread-id`, `x-client-request-id`,
  `x-codex-window-id`, `x-codex-turn-metadata` (JSON), `x-codex-beta-features`.
- Body: `model`, `input`, `tools`, `tool_choice: "auto"`, `parallel_tool_calls: true`,
  `reasoning: {"summary": "auto"}` (plus `effort` when `model_reasoning_effort` is set),
  `store: false`, `include: ["reasoning.encrypted_content"]`, `prompt_cache_key`,
  `client_metadata`; no `instructions` (its prompt is the first `developer` message).
- `input`: `developer` messages (the Codex prompt, the skills list), a `user` message with
  `<environment_context>` (cwd, shell, date, sandbox), the task as a `user` message; later
  turns resend everything plus the items it got back verbatim (`reasoning` with its
  `content` and `encrypted_content`, `function_call` with `id`/`status`) and
  `function_call_output {id, call_id, output: str}`.
- `tools`: functions `exec_command` (the shell: `{"cmd": str, "workdir"?, "tty"?, ...}`;
  its output comes back as text starting `Chunk ID: ...` and `Process exited with code N`),
  `write_stdin`, `request_user_input`, `view_image`, `get_goal`, `create_goal`,
  `update_goal`; a `namespace` `multi_agent_v1` of five functions (calls to them must come
  back as `function_call` items with `namespace`); and `{"type": "web_search"}` unless
  `web_search = "disabled"`.
- It reads only `response.output_item.done` items and `response.completed` (id, usage);
  deltas are for display. Without `-s`/approval flags `codex exec` runs in a read-only
  bubblewrap sandbox (the command fails with "Read-only file system"); `-s workspace-write`
  lets it write in the cwd (bundled bwrap, works as root here);
  `--dangerously-bypass-approvals-and-sandbox` needs nothing. With CODEX_HOME under /tmp it
  warns that it "could not create PATH aliases" and carries on; an unknown model gets
  "Model metadata ... not found" (an `error` item in --json) and fallback settings.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.agents import npm
from tests.agents.claude_code import PhoneHomeTrap
from tests.agents.npm import INSTALL_HINT, NODE_MODULES

PACKAGE = "@openai/codex"
KEY_ENV = "SWITCHYARD_API_KEY"
PROVIDER = "switchyard"

# We run as root, where no sandbox is guaranteed to work (bubblewrap needs user namespaces):
# the command Codex runs comes from the test's own script, in a temporary directory, so the
# test runs it unsandboxed and unasked. (`-s workspace-write` also works where bwrap can run.)
EXEC_ARGS = ("--dangerously-bypass-approvals-and-sandbox", "--skip-git-repo-check",
             "--ephemeral", "--json", "--color", "never")

_TRIPLES = {("Linux", "x86_64"): "x86_64-unknown-linux-musl",
            ("Linux", "aarch64"): "aarch64-unknown-linux-musl",
            ("Darwin", "x86_64"): "x86_64-apple-darwin",
            ("Darwin", "arm64"): "aarch64-apple-darwin"}


class CodexMissing(RuntimeError):
    """The pinned Codex is not installed in tests/agents/node_modules."""


def pinned_version() -> str:
    return npm.pinned_version(PACKAGE)


def locate() -> Path:
    """The native `codex` binary of the pinned version, or CodexMissing."""
    wanted = npm.require_pinned(PACKAGE, "Codex", CodexMissing)
    triple = _TRIPLES.get((platform.system(), platform.machine()))
    if triple is not None:
        for package in sorted((NODE_MODULES / "@openai").glob("codex-*")):
            binary = package / "vendor" / triple / "bin" / "codex"
            if binary.is_file() and os.access(binary, os.X_OK):
                return binary
    raise CodexMissing(
        f"Codex {wanted} is in {NODE_MODULES} but its native binary for this platform is "
        f"not (npm skipped the optional platform package?): {INSTALL_HINT}")


def config_toml(base_url: str, model: str) -> str:
    """`config.toml` for a run against the gateway at `base_url`, offline."""
    return f"""\
model = {json.dumps(model)}
model_provider = "{PROVIDER}"
web_search = "disabled"
check_for_update_on_startup = false

[analytics]
enabled = false

[features]
plugins = false

[model_providers.{PROVIDER}]
name = "Switchyard"
base_url = {json.dumps(base_url.rstrip("/") + "/v1")}
env_key = "{KEY_ENV}"
wire_api = "responses"
request_max_retries = 0
stream_max_retries = 0
"""


@dataclass
class Run:
    """One finished `codex exec --json` run."""

    argv: list[str]
    returncode: int | None  # None: killed at the timeout
    stdout: str
    stderr: str
    seconds: float
    phone_home: list[str] = field(default_factory=list)

    @property
    def events(self) -> list[dict[str, Any]]:
        """The JSONL events on stdout (thread.started, item.completed, turn.completed, ...)."""
        out: list[dict[str, Any]] = []
        for line in self.stdout.splitlines():
            with contextlib.suppress(ValueError):
                value = json.loads(line)
                if isinstance(value, dict):
                    out.append(value)
        return out

    def items(self, kind: str) -> list[dict[str, Any]]:
        """The completed items of one type (`agent_message`, `command_execution`, `error`)."""
        return [e["item"] for e in self.events if e.get("type") == "item.completed"
                and isinstance(e.get("item"), dict) and e["item"].get("type") == kind]

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and any(e.get("type") == "turn.completed"
                                            for e in self.events)

    def describe(self) -> str:
        """Everything needed to see why a run failed, for assertion messages."""
        state = "timed out" if self.returncode is None else f"exit {self.returncode}"
        return (f"codex {state} after {self.seconds:.1f}s: {' '.join(self.argv[1:])}\n"
                f"stdout: {self.stdout[-4000:]}\nstderr: {self.stderr[-4000:]}\n"
                f"phone-home attempts: {self.phone_home}")


def environment(token: str, home: Path, proxy: str | None,
                extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """A from-scratch environment: HOME and CODEX_HOME under `home`, the key in KEY_ENV, and
    any leak sent to `proxy`."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
        "HOME": str(home),
        "CODEX_HOME": str(home / ".codex"),
        "USER": os.environ.get("USER", "tester"),
        "LANG": "C.UTF-8",
        "TERM": "dumb",
        "NO_COLOR": "1",
        "TMPDIR": str(home / "tmp"),
        "XDG_CONFIG_HOME": str(home / ".config"),
        "XDG_CACHE_HOME": str(home / ".cache"),
        KEY_ENV: token,
    }
    if proxy:
        env.update(HTTPS_PROXY=proxy, HTTP_PROXY=proxy, https_proxy=proxy, http_proxy=proxy,
                   ALL_PROXY=proxy, NO_PROXY="127.0.0.1,localhost,::1",
                   no_proxy="127.0.0.1,localhost,::1")
    env.update(extra or {})
    (home / "tmp").mkdir(parents=True, exist_ok=True)
    return env


def run(prompt: str, *, base_url: str, token: str, cwd: Path, home: Path, model: str,
        timeout: float = 60, args: Sequence[str] = (),
        env: Mapping[str, str] | None = None) -> Run:
    """Run `codex exec` on `prompt` in cwd against the gateway at base_url; kills the whole
    process group at `timeout`."""
    binary = locate()
    codex_home = home / ".codex"
    codex_home.mkdir(parents=True, exist_ok=True)
    (codex_home / "config.toml").write_text(config_toml(base_url, model))
    argv = [str(binary), "exec", *EXEC_ARGS, "-C", str(cwd), *args, prompt]
    with PhoneHomeTrap() as trap:
        environ = environment(token, home, trap.url, env)
        started = time.monotonic()
        proc = subprocess.Popen(argv, cwd=cwd, env=environ, stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                start_new_session=True)
        code: int | None
        try:
            stdout, stderr = proc.communicate(timeout=timeout)
            code = proc.returncode
        except subprocess.TimeoutExpired:
            npm.kill_group(proc.pid)
            stdout, stderr = proc.communicate()
            code = None
        npm.kill_group(proc.pid)  # whatever it left running
        seconds = time.monotonic() - started
        attempts = list(trap.attempts)
    return Run(argv, code, stdout, stderr, seconds, attempts)

