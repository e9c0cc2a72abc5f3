"""The pinned npm packages of tests/agents: where they live, whether the pinned version is the
one installed, and stopping what an agent left running."""

from __future__ import annotations

import contextlib
import json
import os
import signal
from pathlib import Path

AGENTS_DIR = Path(__file__).resolve().parent
NODE_MODULES = AGENTS_DIR / "node_modules"
INSTALL_HINT = ("run `make test` (it installs the pinned agents with "
                "`npm ci --prefix tests/agents`; needs node and npm)")


def pinned_version(package: str) -> str:
    manifest = json.loads((AGENTS_DIR / "package.json").read_text())
    return str(manifest["dependencies"][package])


def installed_version(package: str) -> str | None:
    try:
        manifest = json.loads((NODE_MODULES / package / "package.json").read_text())
    except (OSError, ValueError):
        return None
    return str(manifest.get("version"))


def require_pinned(package: str, label: str, missing: type[Exception]) -> str:
    """The pinned version, once it is the one installed; else `missing` saying what to run."""
    wanted, found = pinned_version(package), installed_version(package)
    if found is None:
        raise missing(f"{label} {wanted} is not installed in {NODE_MODULES}: {INSTALL_HINT}")
    if found != wanted:
        raise missing(
            f"tests/agents has {label} {found} installed but pins {wanted}: {INSTALL_HINT}")
    return wanted


def kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
