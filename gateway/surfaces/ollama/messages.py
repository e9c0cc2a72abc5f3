"""Ollama chat messages as canonical (chat-completions) messages.

- roles system | user | assistant | tool (case-insensitive, as Ollama reads them); `content` a
  string (null or absent: empty).
- `images` (base64, as Ollama takes them; a `data:` URL is taken too) on a user message ->
  `image_url` parts after the text, as `data:` URLs whose media type is read from the image's
  first bytes (PNG, JPEG, GIF, WebP). Images on other roles, or bytes that are none of these,
  are a 400: the model would otherwise answer about an image it never saw.
- assistant `thinking` -> `reasoning_content` (DeepSeek needs it back on tool-call turns);
  `tool_calls [{id?, function: {name, arguments: object}}]` -> canonical tool calls whose
  arguments are the object's JSON (`{"_raw": text}`, how render.py shows arguments that were
  not an object, gives back the text). Ollama's clients often drop the call's `id`, so a call
  without one gets `call_<message index>_<call index>`: stable as the history grows.
- tool results: `tool_call_id` when the client sent it; otherwise the earliest unanswered call
  of the assistant turn before it named `tool_name` (else its earliest unanswered call), which
  is how Ollama pairs them.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

import orjson

from gateway.core.call import Message
from gateway.errors import InvalidRequest

_ROLES = frozenset({"system", "user", "assistant", "tool"})
_RAW_KEY = "_raw"
# Leading bytes of the image formats the providers read, and their media types.
_SIGNATURES = ((b"\x89PNG\r\n\x1a\n", "image/png"), (b"\xff\xd8\xff", "image/jpeg"),
               (b"GIF87a", "image/gif"), (b"GIF89a", "image/gif"))
_SNIFF_CHARS = 16  # base64 characters decoded to recognise a format (12 bytes)


def chat_messages(value: Any) -> list[Message]:
    if not isinstance(value, list) or not value:
        raise InvalidRequest("messages: a non-empty array of messages is required",
                             param="messages")
    out: list[Message] = []
    unanswered: list[tuple[str, str]] = []  # (id, name) of the last turn's unanswered calls
    for i, message in enumerate(value):
        where = f"messages[{i}]"
        if not isinstance(message, dict):
            raise InvalidRequest(f"{where}: must be an object", param=where)
        role = message.get("role")
        role = role.lower() if isinstance(role, str) else role
        if not isinstance(role, str) or role not in _ROLES:
            raise InvalidRequest(
                f"{where}.role: must be system, user, assistant or tool; got {role!r}",
                param=f"{where}.role",
            )
        content = _content(message, where)
        images = message.get("images")
        if images and role != "user":
            raise InvalidRequest(f"{where}.images: images are only accepted in user messages",
                                 param=f"{where}.images")
        if role == "assistant":
            turn = _assistant(message, content, i, where)
            unanswered = [(c["id"], c["function"]["name"]) for c in turn.get("tool_calls", ())]
            out.append(turn)
        elif role == "tool":
            call_id = _tool_call_id(message, unanswered, where)
            out.append({"role": "tool", "tool_call_id": call_id, "content": content})
        elif role == "user":
            out.append(user_message(content, images, f"{where}.images"))
        else:
            out.append({"role": "system", "content": content})
    return out


def user_message(text: str, images: Any, where: str) -> Message:
    """A user turn: the text, then its images (`where` names the images field; an
    /api/generate prompt is a user turn too)."""
    if not images:
        return {"role": "user", "content": text}
    if not isinstance(images, list):
        raise InvalidRequest(f"{where}: must be an array of base64 images", param=where)
    parts: list[dict[str, Any]] = [{"type": "text", "text": text}] if text else []
    for k, image in enumerate(images):
        url = image_url(image, f"{where}[{k}]")
        parts.append({"type": "image_url", "image_url": {"url": url}})
    return {"role": "user", "content": parts}


def image_url(image: Any, where: str) -> str:
    if not isinstance(image, str) or not image:
        raise InvalidRequest(f"{where}: must be a base64-encoded image", param=where)
    if image.startswith("data:"):
        return image
    try:
        head = base64.b64decode(image[:_SNIFF_CHARS], validate=True)
    except (binascii.Error, ValueError):
        raise InvalidRequest(f"{where}: must be a base64-encoded image", param=where) from None
    media_type = _media_type(head)
    if media_type is None:
        raise InvalidRequest(f"{where}: not a PNG, JPEG, GIF or WebP image", param=where)
    return f"data:{media_type};base64,{image}"


def _media_type(head: bytes) -> str | None:
    for signature, media_type in _SIGNATURES:
        if head.startswith(signature):
            return media_type
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    return None


def _content(message: dict[str, Any], where: str) -> str:
    content = message.get("content")
    if content is None:
        return ""
    if not isinstance(content, str):
        raise InvalidRequest(f"{where}.content: must be a string", param=f"{where}.content")
    return content


def _assistant(message: dict[str, Any], content: str, position: int, where: str) -> Message:
    turn: Message = {"role": "assistant", "content": content}
    thinking = message.get("thinking")
    if isinstance(thinking, str) and thinking:
        turn["reasoning_content"] = thinking
    calls = message.get("tool_calls")
    if calls is None:
        return turn
    if not isinstance(calls, list):
        raise InvalidRequest(f"{where}.tool_calls: must be an array",
                             param=f"{where}.tool_calls")
    tool_calls = [_tool_call(call, position, k, f"{where}.tool_calls[{k}]")
                  for k, call in enumerate(calls)]
    if tool_calls:
        turn["tool_calls"] = tool_calls
        if not content:
            turn["content"] = None
    return turn


def _tool_call(call: Any, position: int, k: int, where: str) -> dict[str, Any]:
    function = call.get("function") if isinstance(call, dict) else None
    if not isinstance(function, dict) or not isinstance(function.get("name"), str):
        raise InvalidRequest(f"{where}.function.name: a function name is required",
                             param=f"{where}.function.name")
    call_id = call.get("id")
    if not isinstance(call_id, str) or not call_id:
        call_id = f"call_{position}_{k}"
    return {"id": call_id, "type": "function",
            "function": {"name": function["name"],
                         "arguments": _arguments(function.get("arguments"), where)}}


def _arguments(value: Any, where: str) -> str:
    if value is None:
        return "{}"
    if isinstance(value, str):  # a client that kept the JSON text
        return value
    if not isinstance(value, dict):
        raise InvalidRequest(f"{where}.function.arguments: must be an object",
                             param=f"{where}.function.arguments")
    raw = value.get(_RAW_KEY)
    if len(value) == 1 and isinstance(raw, str):
        return raw
    return orjson.dumps(value).decode()


def _tool_call_id(message: dict[str, Any], unanswered: list[tuple[str, str]], where: str) -> str:
    given = message.get("tool_call_id")
    name = message.get("tool_name")
    if isinstance(given, str) and given:
        pick = next((k for k, (call_id, _) in enumerate(unanswered) if call_id == given), None)
    elif unanswered:
        pick = next((k for k, (_, call) in enumerate(unanswered) if call == name), 0)
        given = unanswered[pick][0]
    else:
        raise InvalidRequest(
            f"{where}: a tool message must answer a tool call of the assistant message "
            "before it (tool_name or tool_call_id)",
            param=f"{where}.role",
        )
    if pick is not None:
        del unanswered[pick]
    return given
