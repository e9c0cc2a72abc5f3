"""`${VAR}` references in a config file, with the shell's meaning.

Expanded in the parsed YAML (string values only, never keys), so a value that holds a colon or
a quote cannot change the file's structure. The forms:

- `${VAR}`: the variable. A value that is nothing but an unset reference is left out, so the
  field keeps its default (the README's "defaults shown" examples load without the variables);
  inside a longer string an unset variable is an error, since half a URL helps nobody.
- `${VAR:-default}` / `${VAR-default}`: the default when VAR is unset or empty / unset. A value
  that comes out empty from `${VAR:-}` is left out too (`master_key: ${GATEWAY_MASTER_KEY:-}`
  means "no master key", never the literal text).
- `${VAR:?message}` / `${VAR?message}`: required; the message says why.
- `$${` is a literal `${`.

Every missing variable is reported in one error, each with the field that needs it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

_REF = re.compile(r"\$\$\{|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?)([-?])((?:[^{}]|\{[^{}]*\})*))?\}")
_OMIT = object()


@dataclass(frozen=True, slots=True)
class Missing:
    """A required variable that is not set, and where the config asked for it."""

    name: str
    where: str
    message: str | None = None

    def __str__(self) -> str:
        why = f": {self.message}" if self.message else ""
        return f"${{{self.name}}} (at {self.where}){why}"


def expand(data: dict[str, Any], env: Mapping[str, str]) -> tuple[dict[str, Any], list[Missing]]:
    """The tree with references replaced, and every required variable that was not set."""
    missing: list[Missing] = []
    out = _walk(data, env, "", missing)
    return (out if isinstance(out, dict) else {}), missing


def _walk(value: Any, env: Mapping[str, str], where: str, missing: list[Missing]) -> Any:
    if isinstance(value, str):
        return _expand_string(value, env, where or "(top level)", missing)
    if isinstance(value, dict):
        out: dict[Any, Any] = {}
        for key, item in value.items():
            expanded = _walk(item, env, f"{where}.{key}" if where else str(key), missing)
            if expanded is not _OMIT:
                out[key] = expanded
        return out
    if isinstance(value, list):
        items = [_walk(item, env, f"{where}[{i}]", missing) for i, item in enumerate(value)]
        return [item for item in items if item is not _OMIT]
    return value


def _expand_string(text: str, env: Mapping[str, str], where: str,
                   missing: list[Missing]) -> Any:
    if "${" not in text:
        return text
    refs = 0
    empty_refs = 0

    def replace(match: re.Match[str]) -> str:
        nonlocal refs, empty_refs
        name = match.group(1)
        if name is None:  # `$${`: an escaped literal
            return "${"
        refs += 1
        colon, op, word = match.group(2), match.group(3), match.group(4)
        value = env.get(name)
        absent = value is None or (colon == ":" and value == "")
        if not absent:
            return value or ""
        if op == "-":
            default = _expand_string(word, env, where, missing)
            result = default if isinstance(default, str) else ""
        elif op == "?":
            missing.append(Missing(name, where, word or "required"))
            result = ""
        elif whole:
            result = ""
        else:
            missing.append(Missing(name, where))
            result = ""
        if not result:
            empty_refs += 1
        return result

    whole = _REF.fullmatch(text) is not None and not text.startswith("$${")
    result = _REF.sub(replace, text)
    if whole and refs == 1 and empty_refs == 1 and result == "":
        return _OMIT  # the field stays unset: its default applies
    return result


def describe(missing: list[Missing]) -> str:
    """One message naming every missing variable."""
    noun = "variable is" if len(missing) == 1 else "variables are"
    lines = [f"the config file needs environment variables that are not set "
             f"({len(missing)} {noun} missing):"]
    lines += [f"  {item}" for item in missing]
    lines.append("  set them, or give a default with ${NAME:-default}")
    return "\n".join(lines)
