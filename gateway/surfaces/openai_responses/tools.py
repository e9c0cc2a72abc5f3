"""`tools` and `tool_choice` as chat function tools.

- `{type: function, name, description, parameters, strict}` -> `{type: function, function:
  {name, description, parameters}}`. `strict` is dropped: DeepSeek offers strict schemas only on
  its beta endpoint, and an ignored `strict` is what the chat providers do anyway.
- `{type: namespace, name, description, tools: [function, ...]}` (Codex groups its sub-agent
  tools so) -> one function per member, named `<namespace>__<name>` (function names allow only
  letters, digits, `_` and `-`); the model's calls to it come back as `function_call` items
  with `namespace` and the member's own `name`, as OpenAI sends them.
- Any other type is a tool OpenAI runs on its own servers (web_search, file_search,
  code_interpreter, computer_use, image_generation, mcp, shell, ...) or a freeform `custom`
  tool: a 400 naming it, since the gateway cannot run it and pretending would answer a question
  the model never got to research.

`tool_choice`: "auto" | "none" | "required" as they are; `{type: function, name, namespace?}`
-> that function; `{type: allowed_tools, mode, tools}` -> the listed tools only, with `mode`
as the choice; any other type (a built-in tool) is a 400.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gateway.errors import InvalidRequest

NAMESPACE_SEPARATOR = "__"
_CHOICES = frozenset({"auto", "none", "required"})
_CODEX_HINT = "; Codex: set `web_search = \"disabled\"` in config.toml"
_HINTS = {"web_search": _CODEX_HINT, "web_search_preview": _CODEX_HINT}

Namespaced = dict[str, tuple[str, str]]  # flat function name -> (namespace, member name)


def flat_name(namespace: str | None, name: str) -> str:
    """The chat function name of a namespace's member (its own name outside a namespace)."""
    return f"{namespace}{NAMESPACE_SEPARATOR}{name}" if namespace else name


@dataclass(frozen=True, slots=True)
class Tools:
    functions: list[dict[str, Any]]  # canonical chat tools
    namespaced: Namespaced


def translate_tools(value: Any) -> Tools:
    if value is None:
        return Tools([], {})
    if not isinstance(value, list):
        raise InvalidRequest("tools: must be an array", param="tools")
    functions: list[dict[str, Any]] = []
    namespaced: Namespaced = {}
    for i, tool in enumerate(value):
        where = f"tools[{i}]"
        if not isinstance(tool, dict):
            raise InvalidRequest(f"{where}: must be an object", param=where)
        kind = tool.get("type")
        if kind == "function":
            functions.append(_function(tool, where, None))
        elif kind == "namespace":
            namespace = _name(tool, where)
            members = tool.get("tools")
            if not isinstance(members, list):
                raise InvalidRequest(f"{where}.tools: must be an array of function tools",
                                     param=f"{where}.tools")
            for j, member in enumerate(members):
                at = f"{where}.tools[{j}]"
                if not isinstance(member, dict) or member.get("type") != "function":
                    raise InvalidRequest(f"{at}: a namespace holds function tools only",
                                         param=f"{at}.type")
                function = _function(member, at, namespace)
                namespaced[function["function"]["name"]] = (namespace, member["name"])
                functions.append(function)
        else:
            raise _builtin(kind, where)
    names = [f["function"]["name"] for f in functions]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise InvalidRequest(f"tools: more than one tool is named {duplicates[0]!r}",
                             param="tools")
    return Tools(functions, namespaced)


def translate_tool_choice(value: Any, tools: Tools) -> tuple[Any, list[dict[str, Any]]]:
    """(the canonical tool_choice or None, the tools to offer)."""
    functions = tools.functions
    if value is None:
        return None, functions
    if isinstance(value, str):
        if value not in _CHOICES:
            raise InvalidRequest(
                f"tool_choice: must be auto, none, required or an object; got {value!r}",
                param="tool_choice")
        return value, functions
    if not isinstance(value, dict):
        raise InvalidRequest("tool_choice: must be a string or an object", param="tool_choice")
    kind = value.get("type")
    if kind == "function":
        name = flat_name(_optional_str(value, "namespace", "tool_choice"),
                         _name(value, "tool_choice"))
        _known(name, functions, "tool_choice.name")
        return {"type": "function", "function": {"name": name}}, functions
    if kind == "allowed_tools":
        mode = value.get("mode", "auto")
        if mode not in ("auto", "required"):
            raise InvalidRequest("tool_choice.mode: must be auto or required",
                                 param="tool_choice.mode")
        listed = value.get("tools")
        if not isinstance(listed, list):
            raise InvalidRequest("tool_choice.tools: must be an array", param="tool_choice.tools")
        allowed: set[str] = set()
        for i, tool in enumerate(listed):
            at = f"tool_choice.tools[{i}]"
            if not isinstance(tool, dict) or tool.get("type") != "function":
                raise _builtin(tool.get("type") if isinstance(tool, dict) else None, at)
            name = flat_name(_optional_str(tool, "namespace", at), _name(tool, at))
            _known(name, functions, f"{at}.name")
            allowed.add(name)
        return mode, [f for f in functions if f["function"]["name"] in allowed]
    raise _builtin(kind, "tool_choice")


def _function(tool: dict[str, Any], where: str, namespace: str | None) -> dict[str, Any]:
    name = _name(tool, where)
    function: dict[str, Any] = {"name": flat_name(namespace, name)}
    description = _optional_str(tool, "description", where)
    if description is not None:
        function["description"] = description
    parameters = tool.get("parameters")
    if parameters is None:
        parameters = {"type": "object", "properties": {}}
    elif not isinstance(parameters, dict):
        raise InvalidRequest(f"{where}.parameters: must be an object (a JSON schema)",
                             param=f"{where}.parameters")
    function["parameters"] = parameters
    return {"type": "function", "function": function}


def _name(tool: dict[str, Any], where: str) -> str:
    name = tool.get("name")
    if not isinstance(name, str) or not name:
        raise InvalidRequest(f"{where}.name: a non-empty string is required",
                             param=f"{where}.name")
    return name


def _optional_str(data: dict[str, Any], key: str, where: str) -> str | None:
    value = data.get(key)
    if value is not None and not isinstance(value, str):
        raise InvalidRequest(f"{where}.{key}: must be a string", param=f"{where}.{key}")
    return value


def _known(name: str, functions: list[dict[str, Any]], param: str) -> None:
    if all(f["function"]["name"] != name for f in functions):
        raise InvalidRequest(f"{param}: no function tool named {name!r} is in `tools`",
                             param=param)


def _builtin(kind: Any, where: str) -> InvalidRequest:
    if not isinstance(kind, str):
        return InvalidRequest(f"{where}.type: a tool type is required (e.g. \"function\")",
                              param=f"{where}.type")
    return InvalidRequest(
        f"{where}: this gateway cannot run tools of type {kind!r} (OpenAI runs its built-in "
        "tools on its own servers; freeform custom tools have no chat equivalent): only "
        f"function tools and namespaces of function tools are supported{_HINTS.get(kind, '')}",
        param=f"{where}.type",
    )
