"""Validation errors worded for the operator who wrote the file.

Pydantic says "routes.x.targets.0.provider: Value error, ..." or "Extra inputs are not
permitted"; an operator needs the field path as written in YAML and, for a typo, the name
that was probably meant.
"""

from __future__ import annotations

import difflib
import types
import typing
from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel, ValidationError


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """' (did you mean 'x'?)' for the closest choice, or '' when none is close."""
    close = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def field_path(loc: Iterable[int | str]) -> str:
    """`routes.flash.targets[0].provider`: indices in brackets, as one reads YAML."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def describe(exc: ValidationError, root: type[BaseModel]) -> str:
    lines = ["invalid configuration:"]
    for err in exc.errors():
        loc = err["loc"]
        if err["type"] == "value_error" and not loc:
            # Our own cross-reference checks: the message already names the field path(s).
            text = str(err.get("ctx", {}).get("error", err["msg"]))
            lines += [f"  {line}" for line in text.splitlines()]
            continue
        where = field_path(loc)
        if err["type"] == "extra_forbidden":
            known = _fields_at(root, loc[:-1])
            hint = did_you_mean(str(loc[-1]), known) if known else ""
            lines.append(f"  {where}: unknown field{hint}")
            continue
        message = err["msg"].removeprefix("Value error, ")
        lines.append(f"  {where}: {message}")
    return "\n".join(lines)


def _fields_at(root: type[BaseModel], loc: Iterable[int | str]) -> list[str]:
    """The field names the model at `loc` accepts (for suggestions); [] when not a model."""
    current: Any = root
    for part in loc:
        current = _unwrap(current)
        if isinstance(current, type) and issubclass(current, BaseModel):
            info = current.model_fields.get(str(part))
            if info is None:
                return []
            current = info.annotation
            continue
        args = typing.get_args(current)
        origin = typing.get_origin(current)
        if origin is dict and len(args) == 2:
            current = args[1]
        elif origin is list and args:
            current = args[0]
        else:
            return []
    current = _unwrap(current)
    if isinstance(current, type) and issubclass(current, BaseModel):
        return list(current.model_fields)
    return []


def _unwrap(annotation: Any) -> Any:
    """`X | None` -> X."""
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        options = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(options) == 1:
            return options[0]
    return annotation
