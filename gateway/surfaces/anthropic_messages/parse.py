"""Parsing a Messages request into a canonical call.

The body is parsed once with orjson and only what the gateway reads is type-checked; unknown
fields are ignored (Claude Code writes keys of its own into requests). A problem is a 400 whose
message names the field, e.g. `messages[2].content[0].source.type`.

Content blocks become canonical (chat) messages:
- `system` (a string or text blocks; `cache_control` ignored): one system message, blocks joined
  by a blank line. Messages of role `system` (Claude Code sends its environment notes so) stay
  system messages where they are.
- user turns: each `tool_result` becomes a `tool` message, in order, before the rest of the
  turn, which becomes one user message after them. A result with `is_error` has its text
  prefixed with `Error: `. Images inside a result cannot go into a tool message, so they move
  into that user message, each after a line naming the tool call; the tool message says so.
- `text` -> text; `image` (base64 -> a `data:` URL, url -> the URL) -> an `image_url` part;
  `document` with a text (or content-blocks) source -> text, titled when it has a title. PDFs
  (base64, url or file sources) are a 400: no provider of the gateway reads PDFs, and pretending
  to would answer about a document the model never saw. A user message whose parts are all text
  is sent as one string (parts joined by a blank line).
- assistant turns: text -> content; `tool_use {id, name, input}` -> `tool_calls` (arguments the
  JSON of `input`, or the text of a `{"_raw": text}` input, see render.py); `thinking` blocks
  whose signature this gateway made (`ThinkingSigner`) -> the turn's `reasoning_content`, which
  DeepSeek needs back; any other thinking block, and every `redacted_thinking` block, is
  dropped: that reasoning is not the model's own.

Tools marked `defer_loading` are left out until a `tool_reference` block in a tool result loads
them (as Anthropic's tool search does); the reference itself reads "Tool X is now available."

`thinking.display` is ignored: the thinking text is always sent, because it must come back
signed for DeepSeek to accept the next turn.

Parameters: `stop_sequences` -> `stop`; `temperature`, `top_p`, `max_tokens` as they are; `top_k`
kept as `top_k` (the providers drop it); `metadata.user_id` -> `user`; `tools` -> function tools
(a server tool, i.e. one whose `type` is neither absent nor `custom`, is a 400 naming it, as is
`mcp_servers`: the gateway cannot run them); `tool_choice` auto|any|tool|none -> "auto" |
"required" | the named function | "none", `disable_parallel_tool_use` ->
`parallel_tool_calls: false`.

Thinking:
- `thinking: {type: enabled, budget_tokens}`: on, effort from the budget:
  budget <= 4096 -> "low", <= 16384 -> "high", more -> "max" (`thinking.BUDGET_TIERS`, shared by
  every dialect; Claude Code's small background budgets stay cheap, "ultrathink" gets Think Max);
- `{type: adaptive}`: on, the provider's default effort; `{type: disabled}`: off;
- `output_config.effort` (low|medium|high|max; medium is High) sets the effort and wins over the
  budget tiers;
  it does not switch thinking on or off;
- no `thinking`: the model's default (`ResolvedModel.default_thinking`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeGuard

import orjson

from gateway.core.call import Call, Message
from gateway.errors import InvalidRequest
from gateway.models import ModelCatalogue
from gateway.surfaces.anthropic_messages.models import ClaudeModels
from gateway.surfaces.anthropic_messages.signatures import ThinkingSigner
from gateway.surfaces.anthropic_messages.tokens import (
    HeuristicCounter,
    TokenCounter,
    estimate_input_tokens,
)
from gateway.surfaces.body import json_object
from gateway.thinking import DEEPSEEK_EFFORTS, Thinking, mode_for_budget

API = "anthropic.messages"

_EFFORTS = frozenset({"low", "medium", "high", "max"})
_TOOL_CHOICES = frozenset({"auto", "any", "tool", "none"})
_ERROR_PREFIX = "Error: "
_TOOL_IMAGE_NOTE = "(the image output follows in the next user message)"


@dataclass(frozen=True, slots=True)
class MessagesOptions:
    """What the renderers need beyond the canonical call."""

    requested_model: str  # echoed as `model` in answers and message_start
    input_tokens: int  # the estimate shown in message_start (and by count_tokens)
    stop_sequences: tuple[str, ...] = ()  # to name the one that ended an answer, if known


def parse_messages(
    raw: bytes,
    catalogue: ModelCatalogue,
    models: ClaudeModels,
    signer: ThinkingSigner,
    *,
    counter: TokenCounter | None = None,
    count_only: bool = False,
) -> Call:
    """The body of `POST /v1/messages` as a canonical call.

    `count_only` parses the body of `count_tokens` (no `max_tokens`). `counter` prices the
    input-token estimate (default: the dependency-free heuristic).
    """
    body = json_object(raw)
    model_name = body.get("model")
    if not isinstance(model_name, str) or not model_name:
        raise InvalidRequest("model: a model name (string) is required", param="model")
    params: dict[str, Any] = {}
    max_tokens = body.get("max_tokens")
    if max_tokens is not None or not count_only:
        if not _is_int(max_tokens) or max_tokens < 1:
            raise InvalidRequest("max_tokens: a positive integer is required", param="max_tokens")
        params["max_tokens"] = max_tokens

    raw_messages = body.get("messages")
    if not isinstance(raw_messages, list) or not raw_messages:
        raise InvalidRequest("messages: a non-empty array is required", param="messages")
    messages: list[Message] = []
    system = _system(body.get("system"))
    if system:
        messages.append({"role": "system", "content": system})
    loaded: set[str] = set()  # deferred tools that a tool_reference block loaded
    for i, turn in enumerate(raw_messages):
        messages.extend(_turn(turn, f"messages[{i}]", signer, loaded))

    stop = _sampling(body, params)
    tools = _tools(body.get("tools"), loaded)
    if tools:
        params["tools"] = tools
    _tool_choice(body.get("tool_choice"), params)
    if body.get("mcp_servers"):
        raise InvalidRequest(
            "mcp_servers: the MCP connector is not supported by this gateway; run the MCP "
            "servers in the client and pass their tools as custom tools",
            param="mcp_servers",
        )
    user = _user(body.get("metadata"))
    if user is not None:
        params["user"] = user
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise InvalidRequest("stream: must be a boolean", param="stream")

    model = models.resolve(model_name, catalogue)
    thinking = _thinking(body.get("thinking"), body.get("output_config"), model.default_thinking,
                         model.default_effort)
    call = Call(API, model_name, model, thinking, messages, params, stream, user)
    tokens = estimate_input_tokens(call, counter or HeuristicCounter())
    call.options = MessagesOptions(model_name, tokens, stop)
    return call


# ---- body and scalars --------------------------------------------------------------------


def _is_int(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _object(value: Any) -> dict[str, Any]:
    """`value` when it is an object, else an empty one (whose missing fields are then named)."""
    return value if isinstance(value, dict) else {}


def _str_field(block: dict[str, Any], key: str, where: str) -> str:
    value = block.get(key)
    if not isinstance(value, str):
        raise InvalidRequest(f"{where}.{key}: a string is required", param=f"{where}.{key}")
    return value


def _sampling(body: dict[str, Any], params: dict[str, Any]) -> tuple[str, ...]:
    for name in ("temperature", "top_p"):
        value = body.get(name)
        if value is not None:
            if not _is_number(value):
                raise InvalidRequest(f"{name}: must be a number", param=name)
            params[name] = value
    top_k = body.get("top_k")
    if top_k is not None:
        if not _is_int(top_k) or top_k < 0:
            raise InvalidRequest("top_k: must be a non-negative integer", param="top_k")
        params["top_k"] = top_k
    stop = body.get("stop_sequences")
    if stop is None:
        return ()
    if not isinstance(stop, list) or not all(isinstance(s, str) for s in stop):
        raise InvalidRequest("stop_sequences: must be an array of strings", param="stop_sequences")
    if stop:
        params["stop"] = list(stop)
    return tuple(stop)


def _user(metadata: Any) -> str | None:
    if metadata is None:
        return None
    if not isinstance(metadata, dict):
        raise InvalidRequest("metadata: must be an object", param="metadata")
    user = metadata.get("user_id")
    if user is None:
        return None
    if not isinstance(user, str):
        raise InvalidRequest("metadata.user_id: must be a string", param="metadata.user_id")
    return user


# ---- thinking ----------------------------------------------------------------------------


def _thinking(value: Any, output_config: Any, default_enabled: bool,
              default_effort: str | None = None) -> Thinking:
    effort: str | None = None
    if output_config is not None:
        if not isinstance(output_config, dict):
            raise InvalidRequest("output_config: must be an object", param="output_config")
        effort = output_config.get("effort")
        if effort is not None and (not isinstance(effort, str) or effort not in _EFFORTS):
            raise InvalidRequest(
                f"output_config.effort: must be one of low, medium, high, max; got {effort!r}",
                param="output_config.effort",
            )
    if value is None:
        enabled = default_enabled
        if effort is None and enabled:
            effort = default_effort
    else:
        kind = value.get("type") if isinstance(value, dict) else None
        if kind == "disabled":
            enabled = False
        elif kind == "adaptive":
            enabled = True
        elif kind == "enabled":
            enabled = True
            budget = value.get("budget_tokens")
            if not _is_int(budget) or budget < 1:
                raise InvalidRequest(
                    "thinking.budget_tokens: a positive integer is required",
                    param="thinking.budget_tokens",
                )
            if effort is None:
                effort = _effort_for_budget(budget)
        else:
            raise InvalidRequest(
                "thinking: must be {\"type\": \"enabled\", \"budget_tokens\": N}, "
                "{\"type\": \"adaptive\"} or {\"type\": \"disabled\"}",
                param="thinking.type",
            )
    if not enabled:
        return Thinking(enabled=False)
    return Thinking(enabled=True, effort=DEEPSEEK_EFFORTS[effort] if effort else None)


def _effort_for_budget(budget: int) -> str:
    return mode_for_budget(budget)


# ---- tools -------------------------------------------------------------------------------


def _tools(value: Any, loaded: set[str]) -> list[dict[str, Any]]:
    """Function tools; a `defer_loading` tool only once a tool_reference loaded it."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise InvalidRequest("tools: must be an array", param="tools")
    tools: list[dict[str, Any]] = []
    for i, tool in enumerate(value):
        where = f"tools[{i}]"
        if not isinstance(tool, dict):
            raise InvalidRequest(f"{where}: must be an object", param=where)
        kind = tool.get("type")
        if kind is not None and kind != "custom":
            raise InvalidRequest(
                f"{where}: the tool {tool.get('name')!r} is a server tool of type {kind!r}, "
                "which this gateway cannot run; only custom tools (name, description, "
                "input_schema) are supported",
                param=f"{where}.type",
            )
        name = _str_field(tool, "name", where)
        schema = tool.get("input_schema")
        if not isinstance(schema, dict):
            raise InvalidRequest(
                f"{where}.input_schema: an object (a JSON schema) is required",
                param=f"{where}.input_schema",
            )
        function: dict[str, Any] = {"name": name}
        description = tool.get("description")
        if description is not None:
            function["description"] = _str_field(tool, "description", where)
        function["parameters"] = schema
        if tool.get("defer_loading") is True and name not in loaded:
            continue
        tools.append({"type": "function", "function": function})
    return tools


def _tool_choice(value: Any, params: dict[str, Any]) -> None:
    if value is None:
        return
    if not isinstance(value, dict) or not isinstance(value.get("type"), str) \
            or value["type"] not in _TOOL_CHOICES:
        raise InvalidRequest(
            "tool_choice: must be an object whose type is auto, any, tool or none",
            param="tool_choice.type",
        )
    kind = value["type"]
    if kind == "tool":
        name = _str_field(value, "name", "tool_choice")
        params["tool_choice"] = {"type": "function", "function": {"name": name}}
    else:
        params["tool_choice"] = {"auto": "auto", "any": "required", "none": "none"}[kind]
    disable = value.get("disable_parallel_tool_use")
    if disable is not None and not isinstance(disable, bool):
        raise InvalidRequest(
            "tool_choice.disable_parallel_tool_use: must be a boolean",
            param="tool_choice.disable_parallel_tool_use",
        )
    if disable and kind != "none":
        params["parallel_tool_calls"] = False


# ---- messages ----------------------------------------------------------------------------


def _system(value: Any, where: str = "system") -> str:
    if value is None or isinstance(value, str):
        return value or ""
    if not isinstance(value, list):
        raise InvalidRequest(f"{where}: must be a string or an array of text blocks",
                             param=where)
    texts: list[str] = []
    for j, block in enumerate(value):
        at = f"{where}[{j}]"
        if not isinstance(block, dict) or block.get("type") != "text":
            raise InvalidRequest(f"{at}: only text blocks are allowed in a system prompt",
                                 param=f"{at}.type")
        texts.append(_str_field(block, "text", at))
    return "\n\n".join(texts)


def _turn(turn: Any, where: str, signer: ThinkingSigner, loaded: set[str]) -> list[Message]:
    if not isinstance(turn, dict):
        raise InvalidRequest(f"{where}: must be an object", param=where)
    role = turn.get("role")
    if role not in ("user", "assistant", "system"):
        raise InvalidRequest(
            f"{where}.role: must be user, assistant or system; got {role!r}",
            param=f"{where}.role",
        )
    content = turn.get("content")
    if role == "system":
        return [{"role": "system", "content": _system(content, f"{where}.content")}]
    if isinstance(content, str):
        return [{"role": role, "content": content}]
    if not isinstance(content, list):
        raise InvalidRequest(
            f"{where}.content: must be a string or an array of content blocks",
            param=f"{where}.content",
        )
    blocks: list[tuple[str, str, dict[str, Any]]] = []
    for j, block in enumerate(content):
        at = f"{where}.content[{j}]"
        if not isinstance(block, dict) or not isinstance(block.get("type"), str):
            raise InvalidRequest(f"{at}: must be a content block with a type", param=at)
        blocks.append((block["type"], at, block))
    if role == "user":
        return _user_turn(blocks, loaded)
    return [_assistant_turn(blocks, signer)]


def _user_turn(blocks: list[tuple[str, str, dict[str, Any]]], loaded: set[str]) -> list[Message]:
    tool_messages: list[Message] = []
    tool_images: list[dict[str, Any]] = []
    parts: list[dict[str, Any]] = []
    for kind, at, block in blocks:
        if kind == "tool_result":
            message, images = _tool_result(block, at, loaded)
            tool_messages.append(message)
            if images:
                label = f"Image output of tool call {message['tool_call_id']}:"
                tool_images.append({"type": "text", "text": label})
                tool_images.extend(images)
        elif kind == "text":
            parts.append({"type": "text", "text": _str_field(block, "text", at)})
        elif kind == "image":
            parts.append(_image(block, at))
        elif kind == "document":
            parts.append(_document(block, at))
        elif kind in ("tool_use", "thinking", "redacted_thinking"):
            raise InvalidRequest(f"{at}: a {kind} block belongs in an assistant turn",
                                 param=f"{at}.type")
        else:
            raise _unsupported_block(kind, at)
    parts = tool_images + parts
    if not parts and tool_messages:
        return tool_messages
    return [*tool_messages, {"role": "user", "content": _content(parts)}]


def _content(parts: list[dict[str, Any]]) -> str | list[dict[str, Any]]:
    """A string when every part is text (what every provider accepts), else the parts."""
    if all(part["type"] == "text" for part in parts):
        return "\n\n".join(part["text"] for part in parts)
    return parts


def _tool_result(
    block: dict[str, Any], at: str, loaded: set[str]
) -> tuple[Message, list[dict[str, Any]]]:
    call_id = _str_field(block, "tool_use_id", at)
    content = block.get("content")
    texts: list[str] = []
    images: list[dict[str, Any]] = []
    if isinstance(content, str):
        texts.append(content)
    elif isinstance(content, list):
        for k, part in enumerate(content):
            where = f"{at}.content[{k}]"
            part = _object(part)
            kind = part.get("type")
            if kind == "text":
                texts.append(_str_field(part, "text", where))
            elif kind == "image":
                images.append(_image(part, where))
            elif kind == "document":
                texts.append(_document(part, where)["text"])
            elif kind == "tool_reference":
                name = _str_field(part, "tool_name", where)
                loaded.add(name)
                texts.append(f"Tool {name} is now available.")
            else:
                raise InvalidRequest(
                    f"{where}: a tool result holds text, image, document or tool_reference "
                    f"blocks; got {kind!r}",
                    param=f"{where}.type",
                )
    elif content is not None:
        raise InvalidRequest(f"{at}.content: must be a string or an array of blocks",
                             param=f"{at}.content")
    if images:
        texts.append(_TOOL_IMAGE_NOTE)
    text = "\n\n".join(texts)
    is_error = block.get("is_error")
    if is_error is not None and not isinstance(is_error, bool):
        raise InvalidRequest(f"{at}.is_error: must be a boolean", param=f"{at}.is_error")
    if is_error:
        text = _ERROR_PREFIX + text
    return {"role": "tool", "tool_call_id": call_id, "content": text}, images


def _image(block: dict[str, Any], at: str) -> dict[str, Any]:
    source = _object(block.get("source"))
    kind = source.get("type")
    if kind == "base64":
        media_type = _str_field(source, "media_type", f"{at}.source")
        data = _str_field(source, "data", f"{at}.source")
        url = f"data:{media_type};base64,{data}"
    elif kind == "url":
        url = _str_field(source, "url", f"{at}.source")
    else:
        raise InvalidRequest(
            f"{at}.source: an image source must be base64 or url; got {kind!r} (the Files "
            "API is not supported)",
            param=f"{at}.source.type",
        )
    return {"type": "image_url", "image_url": {"url": url}}


def _document(block: dict[str, Any], at: str) -> dict[str, Any]:
    """A document as a text part: plain-text sources only (see the module docstring)."""
    source = _object(block.get("source"))
    kind = source.get("type")
    if kind == "text":
        text = _str_field(source, "data", f"{at}.source")
    elif kind == "content":
        text = _document_blocks(source.get("content"), f"{at}.source.content")
    elif kind in ("base64", "url", "file"):
        raise InvalidRequest(
            f"{at}: PDF documents are not supported by this gateway's models; send the "
            "document's text (a text source) instead",
            param=f"{at}.source.type",
        )
    else:
        raise InvalidRequest(f"{at}.source: unknown document source type {kind!r}",
                             param=f"{at}.source.type")
    title = block.get("title")
    if isinstance(title, str) and title:
        text = f"{title}\n\n{text}"
    return {"type": "text", "text": text}


def _document_blocks(content: Any, at: str) -> str:
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise InvalidRequest(f"{at}: must be a string or an array of text blocks", param=at)
    texts: list[str] = []
    for k, part in enumerate(content):
        where = f"{at}[{k}]"
        if not isinstance(part, dict) or part.get("type") != "text":
            raise InvalidRequest(f"{where}: only text blocks are supported in a document",
                                 param=f"{where}.type")
        texts.append(_str_field(part, "text", where))
    return "\n\n".join(texts)


def _assistant_turn(
    blocks: list[tuple[str, str, dict[str, Any]]], signer: ThinkingSigner
) -> Message:
    texts: list[str] = []
    reasoning: list[str] = []
    tool_calls: list[dict[str, Any]] = []
    for kind, at, block in blocks:
        if kind == "text":
            texts.append(_str_field(block, "text", at))
        elif kind == "tool_use":
            call_id = _str_field(block, "id", at)
            name = _str_field(block, "name", at)
            arguments = _arguments(block.get("input", {}))
            tool_calls.append({"id": call_id, "type": "function",
                               "function": {"name": name, "arguments": arguments}})
        elif kind == "thinking":
            text = _str_field(block, "thinking", at)
            signature = block.get("signature")
            if isinstance(signature, str) and signer.verify(text, signature):
                reasoning.append(text)
        elif kind == "redacted_thinking":
            continue
        elif kind in ("tool_result", "image", "document"):
            raise InvalidRequest(f"{at}: a {kind} block belongs in a user turn",
                                 param=f"{at}.type")
        else:
            raise _unsupported_block(kind, at)
    message: Message = {"role": "assistant", "content": "".join(texts)}
    if tool_calls:
        message["tool_calls"] = tool_calls
        if not texts:
            message["content"] = None
    if reasoning:
        message["reasoning_content"] = "".join(reasoning)
    return message


def _arguments(tool_input: Any) -> str:
    """A tool_use's input as call arguments; `{"_raw": text}` (how render.py shows arguments
    that were not a JSON object) gives the model back exactly what it wrote."""
    if isinstance(tool_input, dict) and len(tool_input) == 1 and isinstance(
            tool_input.get("_raw"), str):
        raw: str = tool_input["_raw"]
        return raw
    return orjson.dumps(tool_input).decode()


def _unsupported_block(kind: str, at: str) -> InvalidRequest:
    return InvalidRequest(
        f"{at}: content blocks of type {kind!r} are not supported by this gateway",
        param=f"{at}.type",
    )
