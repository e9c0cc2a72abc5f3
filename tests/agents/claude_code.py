"""Claude Code, the pinned `@anthropic-ai/claude-code` in tests/agents, run the way a CI job
would: `claude -p <task> --output-format json`, non-interactive, offline, in a throwaway HOME.

`make test` installs it (`npm ci --prefix tests/agents`); `locate()` raises ClaudeCodeMissing
with that instruction when it is not there. The package is a thin wrapper whose postinstall
copies a native binary from a platform package (`@anthropic-ai/claude-code-linux-x64`, ...)
over a placeholder script; when npm skipped install scripts, the platform binary is run
directly, so Node itself is only needed to install.

Nothing but the given base URL is reachable: the environment is built from scratch (no
ANTHROPIC_* or proxy settings leak in from the developer's shell), every switch that stops
Claude Code phoning home is set, and HTTP(S)_PROXY points at a local `PhoneHomeTrap` that
records what would have left the machine and refuses it (the base URL, on loopback, is
exempted through NO_PROXY). See tests/agents/README.md for what Claude Code sends.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from tests.agents import npm
from tests.agents.npm import INSTALL_HINT, NODE_MODULES

PACKAGE = "@anthropic-ai/claude-code"
PLACEHOLDER_MAX_BYTES = 1 << 20  # the wrapper's bin/claude.exe before postinstall: a script

# Everything this version reads to stay off the network besides the API (checked in its
# binary): the first is the umbrella (telemetry, error reports, auto-update, feature flags,
# release notes); the others are named too so a version that splits it still stays quiet.
OFFLINE_ENV: dict[str, str] = {
    "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
    "DISABLE_TELEMETRY": "1",
    "DO_NOT_TRACK": "1",
    "DISABLE_ERROR_REPORTING": "1",
    "DISABLE_AUTOUPDATER": "1",
    "DISABLE_UPDATES": "1",
    "DISABLE_INSTALLATION_CHECKS": "1",
    "CLAUDE_CODE_DISABLE_FEEDBACK_SURVEY": "1",
    "CLAUDE_CODE_IDE_SKIP_AUTO_INSTALL": "1",
    "CLAUDE_CODE_DISABLE_TERMINAL_TITLE": "1",
}

# -p mode needs a permission mode to write files without asking. --dangerously-skip-permissions
# is refused when running as root ("cannot be used with root/sudo privileges"), so acceptEdits,
# which allows the file tools (Write, Edit) and nothing else unasked.
PERMISSION_ARGS = ("--permission-mode", "acceptEdits")


class ClaudeCodeMissing(RuntimeError):
    """The pinned Claude Code is not installed in tests/agents/node_modules."""


def pinned_version() -> str:
    return npm.pinned_version(PACKAGE)


def locate() -> Path:
    """The native `claude` binary of the pinned version, or ClaudeCodeMissing."""
    wanted = npm.require_pinned(PACKAGE, "Claude Code", ClaudeCodeMissing)
    wrapper_bin = NODE_MODULES / PACKAGE / "bin" / "claude.exe"
    candidates = [wrapper_bin] if _size(wrapper_bin) > PLACEHOLDER_MAX_BYTES else []
    scope = NODE_MODULES / PACKAGE.split("/")[0]
    for name in ("claude", "claude.exe"):
        candidates += sorted(scope.glob(f"{PACKAGE.split('/')[1]}-*/{name}"))
    for path in candidates:
        if path.is_file() and os.access(path, os.X_OK):
            return path
    raise ClaudeCodeMissing(
        f"Claude Code {wanted} is in {NODE_MODULES} but its native binary for this platform "
        f"is not (npm skipped the optional platform package?): {INSTALL_HINT}")


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


# --------------------------------------------------------------------------- phone-home trap


class PhoneHomeTrap:
    """A loopback 'proxy' that records the first line of every request sent to it (CONNECT
    host:443 for HTTPS) and answers 403, so a leak is seen, fast, instead of a hang."""

    def __init__(self) -> None:
        self.attempts: list[str] = []
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(16)
        self._sock.settimeout(0.2)
        self.url = f"http://127.0.0.1:{self._sock.getsockname()[1]}"
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="phone-home-trap", daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._stop.set()
        self._thread.join(2)
        self._sock.close()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with conn:
                conn.settimeout(2)
                try:
                    line = conn.makefile("rb").readline(4096).decode(errors="replace").strip()
                    self.attempts.append(line)
                    conn.sendall(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n"
                                 b"Connection: close\r\n\r\n")
                except OSError:
                    pass


# --------------------------------------------------------------------------- running it


@dataclass
class Run:
    """One finished `claude -p` run."""

    argv: list[str]
    returncode: int | None  # None: killed at the timeout
    stdout: str
    stderr: str
    seconds: float
    phone_home: list[str] = field(default_factory=list)

    @property
    def output(self) -> dict[str, Any] | None:
        """The `--output-format json` result object, or None if stdout holds none."""
        for text in [self.stdout.strip(), *reversed(self.stdout.splitlines())]:
            try:
                value = json.loads(text)
            except ValueError:
                continue
            if isinstance(value, dict):
                return value
        return None

    @property
    def ok(self) -> bool:
        """Exited 0 with a result that is not an error (is_error is also set on API errors
        whose subtype still says "success")."""
        out = self.output
        return (self.returncode == 0 and out is not None and out.get("type") == "result"
                and out.get("is_error") is False)

    @property
    def result(self) -> str | None:
        out = self.output
        return None if out is None else out.get("result")

    def describe(self) -> str:
        """Everything needed to see why a run failed, for assertion messages."""
        state = "timed out" if self.returncode is None else f"exit {self.returncode}"
        return (f"claude {state} after {self.seconds:.1f}s: {' '.join(self.argv[1:])}\n"
                f"stdout: {self.stdout[-4000:]}\nstderr: {self.stderr[-4000:]}\n"
                f"phone-home attempts: {self.phone_home}")


def environment(base_url: str, token: str, home: Path, model: str | None,
                proxy: str | None, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """A from-scratch environment: the API at base_url with a bearer token, HOME and the
    config/cache dirs under `home`, the offline switches, and any leak sent to `proxy`."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
        "HOME": str(home),
        "USER": os.environ.get("USER", "tester"),
        "LANG": "C.UTF-8",
        "TERM": "dumb",
        "NO_COLOR": "1",
        "TMPDIR": str(home / "tmp"),
        "XDG_CONFIG_HOME": str(home / ".config"),
        "XDG_CACHE_HOME": str(home / ".cache"),
        "XDG_DATA_HOME": str(home / ".local" / "share"),
        "XDG_STATE_HOME": str(home / ".local" / "state"),
        "CLAUDE_CONFIG_DIR": str(home / ".claude"),
        "ANTHROPIC_BASE_URL": base_url,
        # AUTH_TOKEN is sent as `Authorization: Bearer`; ANTHROPIC_API_KEY would be x-api-key.
        "ANTHROPIC_AUTH_TOKEN": token,
        **OFFLINE_ENV,
    }
    if model:
        # --model sets the main loop; these cover background calls (titles, summaries, ...).
        for name in ("ANTHROPIC_MODEL", "ANTHROPIC_SMALL_FAST_MODEL",
                     "ANTHROPIC_DEFAULT_HAIKU_MODEL", "ANTHROPIC_DEFAULT_SONNET_MODEL",
                     "ANTHROPIC_DEFAULT_OPUS_MODEL"):
            env[name] = model
    if proxy:
        env.update(HTTPS_PROXY=proxy, HTTP_PROXY=proxy, https_proxy=proxy, http_proxy=proxy,
                   NO_PROXY="127.0.0.1,localhost,::1", no_proxy="127.0.0.1,localhost,::1")
    env.update(extra or {})
    (home / "tmp").mkdir(parents=True, exist_ok=True)
    return env


def run(prompt: str, *, base_url: str, token: str, cwd: Path, home: Path,
        model: str | None = None, timeout: float = 60, args: Sequence[str] = (),
        env: Mapping[str, str] | None = None) -> Run:
    """Run `claude -p prompt --output-format json` with the file-writing permission, in cwd,
    against base_url; kills the whole process group at `timeout`."""
    binary = locate()
    argv = [str(binary), "-p", prompt, "--output-format", "json", *PERMISSION_ARGS]
    if model:
        argv += ["--model", model]
    argv += list(args)
    home.mkdir(parents=True, exist_ok=True)
    with PhoneHomeTrap() as trap:
        environ = environment(base_url, token, home, model, trap.url, env)
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
        npm.kill_group(proc.pid)  # whatever it left running (background shells)
        seconds = time.monotonic() - started
        attempts = list(trap.attempts)
    return Run(argv, code, stdout, stderr, seconds, attempts)

