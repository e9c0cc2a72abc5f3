"""`encrypted_content` of the reasoning items the gateway emits, for clients that ask for it
(`include: ["reasoning.encrypted_content"]`, as Codex does with `store: false`).

OpenAI encrypts the model's reasoning so it can come back in the next request without being
shown. DeepSeek's reasoning is shown anyway (as the item's `reasoning_text` content), so the
gateway's `encrypted_content` is that text, base64url-encoded behind a version prefix: opaque to
the client, readable by the gateway when it returns. Values without the prefix (from OpenAI
itself, or another gateway) are not ours to read and are ignored.
"""

from __future__ import annotations

import base64
import binascii

_PREFIX = "sy-reasoning-1."


def encode(text: str) -> str:
    return _PREFIX + base64.urlsafe_b64encode(text.encode("utf-8", "surrogatepass")).decode()


def decode(value: object) -> str | None:
    """The reasoning text of a value `encode` made, else None."""
    if not isinstance(value, str) or not value.startswith(_PREFIX):
        return None
    try:
        return base64.urlsafe_b64decode(value[len(_PREFIX):]).decode("utf-8", "surrogatepass")
    except (binascii.Error, ValueError):
        return None
