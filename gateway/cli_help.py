"""`--help` without `<bool>` after flags.

Typer's rich help prints a value type for every option, flags included (`--json <bool>`,
`--help <bool>`), as if they took a value. Flags take none: their type column is left empty.
Applied once, when `gateway.cli` is imported.
"""

from __future__ import annotations

from typing import Any

from typer.core import TyperOption

_display_type = TyperOption.display_type_rich


def _flag_aware(self: TyperOption, ctx: Any) -> str | None:
    if self.is_flag or self.count:
        return None
    return _display_type(self, ctx)


def install() -> None:
    TyperOption.display_type_rich = _flag_aware  # type: ignore[method-assign]
