"""What a coding agent made the simulated DeepSeek see, for the agents' e2e tests."""

from __future__ import annotations

from typing import Any

from tests.e2e.conftest import Upstreams


def chat_requests(upstreams: Upstreams) -> list[dict[str, Any]]:
    return [r.json for r in upstreams.deepseek.requests
            if r.path.endswith("/chat/completions") and isinstance(r.json, dict)]


def summary(requests: list[dict[str, Any]]) -> str:
    """What DeepSeek was asked, one line a request, for failure messages."""
    lines = []
    for body in requests:
        messages = body.get("messages") or []
        tools = [(t.get("function") or {}).get("name") for t in body.get("tools") or []]
        lines.append(f"model={body.get('model')} stream={body.get('stream')} "
                     f"roles={[m.get('role') for m in messages]} tools={tools}")
    return "\n".join(lines) or "(no request reached DeepSeek)"
