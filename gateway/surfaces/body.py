"""The request body every surface starts from: one JSON object, parsed once with orjson.

Nesting is limited at parse time: orjson reads up to 1,024 levels but writes only about 254,
so a deeper body would parse and then fail (a 500) wherever it is serialised again (the
upstream request, stored responses, key metadata). `MAX_DEPTH` is far above any real request
(tool schemas run a dozen levels deep) and far below that limit; a deeper body is a 400 that
names the field where it goes too deep.
"""

from __future__ import annotations

from typing import Any

import orjson

from gateway.errors import InvalidRequest

MAX_DEPTH = 64
_PATH_SHOWN = 8  # path segments named in the error; the rest is elided


def json_object(raw: bytes) -> dict[str, Any]:
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(f"The request body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise InvalidRequest("The request body must be a JSON object.")
    # Fewer brackets than the limit cannot nest past it: one C-speed count skips the walk.
    if raw.count(b"[") + raw.count(b"{") > MAX_DEPTH and _deeper(body, MAX_DEPTH - 1):
        check_depth(body)  # names the field
    return body


def _deeper(container: Any, left: int) -> bool:
    """True if a container inside `container` nests more than `left` levels below it. What
    `check_depth` decides, without the path it keeps for its message: a coding agent's body
    holds thousands of containers, and the walk that remembers paths took 0.5 ms on 200
    messages, several times the body's parse."""
    for item in container.values() if type(container) is dict else container:
        kind = type(item)
        if (kind is dict or kind is list) and (left == 0 or _deeper(item, left - 1)):
            return True
    return False


def json_value(raw: bytes) -> Any:
    """Any JSON value (admin bodies), with the same depth limit."""
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(f"The request body is not valid JSON: {exc}") from None
    check_depth(value)
    return value


def check_depth(value: Any, limit: int = MAX_DEPTH) -> None:
    """A 400 naming the field (`messages[0].content`) where `value` nests deeper than `limit`
    containers. One walk over the containers; each remembers its parent link, so the path
    costs nothing until it is needed."""
    Link = tuple[Any, str | int] | None
    if not isinstance(value, dict | list):
        return
    stack: list[tuple[Any, int, Link]] = [(value, 1, None)]
    while stack:
        item, depth, link = stack.pop()
        if depth > limit:
            path = _render(_unlink(link))
            raise InvalidRequest(f"{path}: JSON nested deeper than {limit} levels", param=path)
        children = item.items() if isinstance(item, dict) else enumerate(item)
        stack.extend((v, depth + 1, (link, k)) for k, v in children if isinstance(v, dict | list))


def _unlink(link: tuple[Any, str | int] | None) -> list[str | int]:
    path: list[str | int] = []
    while link is not None:
        link, key = link
        path.append(key)
    return path[::-1]


def _render(path: list[str | int]) -> str:
    out = ""
    for part in path[:_PATH_SHOWN]:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    if len(path) > _PATH_SHOWN:
        out += "..."
    return out or "body"
