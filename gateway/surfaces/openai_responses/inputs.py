"""`input` items: checked and given ids (`normalize_input`, what is stored and what
`/input_items` lists), then turned into canonical chat messages (`to_messages`).

Items and what they become:
- `message` (also the short form `{role, content}` without a type): roles user | assistant |
  system | developer; developer becomes system (the providers' word for it). `content` is a
  string or parts: `input_text` / `output_text` / `refusal` -> text, `input_image` (an
  `image_url`, which may be a `data:` URL) -> an `image_url` part. Files (`input_file`, an
  image by `file_id`) are a 400: no provider of the gateway reads the Files API.
- `reasoning` -> the `reasoning_content` of the assistant turn it opens: the text of its
  `reasoning_text` content, else the gateway's own `encrypted_content` (reasoning.py). The
  `summary` is not the reasoning itself and is not sent back.
- `function_call {call_id, name, namespace?, arguments}` -> a `tool_calls` entry of the
  assistant turn (a namespace's member by its flat name, tools.py).
- `function_call_output {call_id, output}` -> a `tool` message; images in an output cannot go
  into a tool message, so they follow the run of tool messages in one user message, each after
  a line naming its call.

Consecutive reasoning, assistant messages and function calls are one assistant turn, in the
order the model produced them; a reasoning item after output starts the next turn. A turn
with reasoning only (no text, no call) is dropped. Any other item type (item_reference,
web_search_call, custom_tool_call, ...) is a 400 naming it.
"""

from __future__ import annotations

from typing import Any

from gateway.core.call import Message
from gateway.errors import InvalidRequest
from gateway.surfaces.openai_responses import reasoning
from gateway.surfaces.openai_responses.ids import new_id
from gateway.surfaces.openai_responses.tools import flat_name

Item = dict[str, Any]

_ROLES = {"user": "user", "assistant": "assistant", "system": "system", "developer": "system"}
_ID_PREFIX = {"message": "msg", "function_call": "fc", "function_call_output": "fco",
              "reasoning": "rs"}
_TEXT_PARTS = frozenset({"input_text", "output_text"})


def normalize_input(value: Any) -> list[Item]:
    """`input` as a list of typed items with ids; `to_messages` checks the rest."""
    if isinstance(value, str):
        return [{"type": "message", "id": new_id("msg"), "role": "user", "status": "completed",
                 "content": [{"type": "input_text", "text": value}]}]
    if not isinstance(value, list) or not value:
        raise InvalidRequest("input: a string or a non-empty array of items is required",
                             param="input")
    items: list[Item] = []
    for i, raw in enumerate(value):
        where = f"input[{i}]"
        if not isinstance(raw, dict):
            raise InvalidRequest(f"{where}: must be an object", param=where)
        item = dict(raw)
        kind = item.setdefault("type", "message")
        if not isinstance(kind, str) or kind not in _ID_PREFIX:
            raise InvalidRequest(
                f"{where}: input items of type {kind!r} are not supported by this gateway "
                "(message, reasoning, function_call and function_call_output are)",
                param=f"{where}.type")
        if kind == "message":
            _message_content(item, where)
        if not isinstance(item.get("id"), str) or not item["id"]:
            item["id"] = new_id(_ID_PREFIX[kind])
        items.append(item)
    return items


def to_messages(items: list[Item]) -> list[Message]:
    """Canonical messages for normalized items; raises InvalidRequest naming `input[i]`."""
    turns = _Turns()
    for i, item in enumerate(items):
        where = f"input[{i}]"
        kind = item["type"]
        if kind == "message":
            turns.message(item, where)
        elif kind == "reasoning":
            turns.reasoning(_reasoning_text(item, where))
        elif kind == "function_call":
            turns.call({
                "id": _str(item, "call_id", where),
                "type": "function",
                "function": {
                    "name": flat_name(_optional_str(item, "namespace", where),
                                      _str(item, "name", where)),
                    "arguments": _str(item, "arguments", where),
                },
            })
        else:
            turns.output(item, where)
    return turns.finish()


class _Turns:
    """Messages being built: the open assistant turn and the images of a run of tool outputs."""

    def __init__(self) -> None:
        self.messages: list[Message] = []
        self._assistant: Message | None = None
        self._tool_images: list[dict[str, Any]] = []

    def message(self, item: Item, where: str) -> None:
        role = item.get("role")
        if not isinstance(role, str) or role not in _ROLES:
            raise InvalidRequest(
                f"{where}.role: must be user, assistant, system or developer; got {role!r}",
                param=f"{where}.role")
        parts = _parts(item["content"], where, role)
        if role == "assistant":
            turn = self._open(fresh=bool(self._assistant and self._assistant.get("tool_calls")))
            text = "".join(p["text"] for p in parts if p["type"] == "text")
            turn["content"] = (turn.get("content") or "") + text
            return
        self._close()
        if _ROLES[role] == "system":
            if any(p["type"] != "text" for p in parts):
                raise InvalidRequest(f"{where}.content: a {role} message holds text only",
                                     param=f"{where}.content")
            self.messages.append({"role": "system", "content": _joined(parts)})
        else:
            self.messages.append({"role": "user", "content": _content(parts)})

    def reasoning(self, text: str | None) -> None:
        current = self._assistant
        fresh = current is not None and bool(current.get("content") or current.get("tool_calls"))
        turn = self._open(fresh=fresh)
        if text:
            turn["reasoning_content"] = turn.get("reasoning_content", "") + text

    def call(self, tool_call: dict[str, Any]) -> None:
        turn = self._open(fresh=False)
        turn.setdefault("tool_calls", []).append(tool_call)

    def output(self, item: Item, where: str) -> None:
        self._close(keep_images=True)
        call_id = _str(item, "call_id", where)
        text, images = _output(item.get("output"), where)
        if images:
            self._tool_images.append({"type": "text",
                                      "text": f"Image output of tool call {call_id}:"})
            self._tool_images.extend(images)
            text = (text + "\n\n" if text else "") + "(the image output follows)"
        self.messages.append({"role": "tool", "tool_call_id": call_id, "content": text})

    def finish(self) -> list[Message]:
        self._close()
        return self.messages

    def _open(self, *, fresh: bool) -> Message:
        if self._assistant is None or fresh:
            self._close()
            self._assistant = {"role": "assistant", "content": None}
        return self._assistant

    def _close(self, *, keep_images: bool = False) -> None:
        turn, self._assistant = self._assistant, None
        if turn is not None and (turn["content"] or turn.get("tool_calls")):
            if not turn["content"]:
                turn["content"] = None  # tool calls only
            self.messages.append(turn)
        if not keep_images and self._tool_images:
            self.messages.append({"role": "user", "content": self._tool_images})
            self._tool_images = []


def _message_content(item: Item, where: str) -> None:
    """A string `content` becomes one text part (as OpenAI lists it back)."""
    content = item.get("content")
    if isinstance(content, str):
        kind = "output_text" if item.get("role") == "assistant" else "input_text"
        item["content"] = [{"type": kind, "text": content}]
    elif not isinstance(content, list):
        raise InvalidRequest(f"{where}.content: must be a string or an array of content parts",
                             param=f"{where}.content")


def _parts(content: Any, where: str, role: str) -> list[dict[str, Any]]:
    parts: list[dict[str, Any]] = []
    if not isinstance(content, list):
        raise InvalidRequest(f"{where}.content: must be a string or an array of content parts",
                             param=f"{where}.content")
    for j, part in enumerate(content):
        at = f"{where}.content[{j}]"
        kind = part.get("type") if isinstance(part, dict) else None
        kind = kind if isinstance(kind, str) else None
        if kind in _TEXT_PARTS:
            parts.append({"type": "text", "text": _str(part, "text", at)})
        elif kind == "refusal":
            parts.append({"type": "text", "text": _str(part, "refusal", at)})
        elif kind == "input_image" and role != "assistant":
            parts.append(_image(part, at))
        else:
            raise _unsupported_part(kind, at)
    return parts


def _image(part: dict[str, Any], at: str) -> dict[str, Any]:
    url = part.get("image_url")
    if not isinstance(url, str) or not url:
        raise InvalidRequest(
            f"{at}: an input_image needs an image_url (a URL or a data: URL); images by "
            "file_id are not supported (no Files API)", param=f"{at}.image_url")
    image: dict[str, Any] = {"url": url}
    detail = part.get("detail")
    if isinstance(detail, str) and detail != "auto":
        image["detail"] = detail
    return {"type": "image_url", "image_url": image}


def _unsupported_part(kind: Any, at: str) -> InvalidRequest:
    if kind == "input_file":
        return InvalidRequest(f"{at}: input_file parts are not supported by this gateway's "
                              "models; send the file's text as input_text",
                              param=f"{at}.type")
    return InvalidRequest(f"{at}: content parts of type {kind!r} are not supported here",
                          param=f"{at}.type")


def _content(parts: list[dict[str, Any]]) -> str | list[dict[str, Any]]:
    """A string when every part is text (what every provider accepts), else the parts."""
    if all(part["type"] == "text" for part in parts):
        return _joined(parts)
    return parts


def _joined(parts: list[dict[str, Any]]) -> str:
    return "\n\n".join(part["text"] for part in parts)


def _reasoning_text(item: Item, where: str) -> str | None:
    content = item.get("content")
    if content is not None:
        if not isinstance(content, list):
            raise InvalidRequest(f"{where}.content: must be an array of reasoning_text parts",
                                 param=f"{where}.content")
        texts: list[str] = []
        for part in content:
            if isinstance(part, dict) and part.get("type") == "reasoning_text":
                text = part.get("text")
                if not isinstance(text, str):
                    raise InvalidRequest(f"{where}.content: reasoning_text parts need a text",
                                         param=f"{where}.content")
                texts.append(text)
        if texts:
            return "".join(texts)
    return reasoning.decode(item.get("encrypted_content"))


def _output(output: Any, where: str) -> tuple[str, list[dict[str, Any]]]:
    if isinstance(output, str):
        return output, []
    if not isinstance(output, list):
        raise InvalidRequest(f"{where}.output: must be a string or an array of content parts",
                             param=f"{where}.output")
    texts: list[str] = []
    images: list[dict[str, Any]] = []
    for j, part in enumerate(output):
        at = f"{where}.output[{j}]"
        kind = part.get("type") if isinstance(part, dict) else None
        kind = kind if isinstance(kind, str) else None
        if kind in _TEXT_PARTS:
            texts.append(_str(part, "text", at))
        elif kind == "input_image":
            images.append(_image(part, at))
        else:
            raise _unsupported_part(kind, at)
    return "\n\n".join(texts), images


def _str(data: dict[str, Any], key: str, where: str) -> str:
    value = data.get(key)
    if not isinstance(value, str):
        raise InvalidRequest(f"{where}.{key}: a string is required", param=f"{where}.{key}")
    return value


def _optional_str(data: dict[str, Any], key: str, where: str) -> str | None:
    value = data.get(key)
    if value is not None and not isinstance(value, str):
        raise InvalidRequest(f"{where}.{key}: must be a string", param=f"{where}.{key}")
    return value
