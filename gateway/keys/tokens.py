"""Virtual key strings: minted, recognised and hashed.

A key is `sk-sy-` plus 40 URL-safe random characters (240 bits). Only its sha256 is stored:
for high-entropy random tokens a fast unsalted hash is the standard choice (GitHub and Stripe
do the same), because a brute-force search over 2**240 candidates is hopeless whatever the
hash costs, while a slow password hash would put milliseconds on every cache miss of the hot
path. The first characters are kept for display so people can tell their keys apart.
"""

from __future__ import annotations

import hashlib
import re
import secrets

PREFIX = "sk-sy-"
_RANDOM_CHARS = 40
_SHAPE = re.compile(r"^sk-sy-[A-Za-z0-9_-]{40}$")
DISPLAY_CHARS = 10


def mint() -> str:
    """A new key; shown to its owner once and never stored."""
    while True:
        body = secrets.token_urlsafe(30)  # 30 bytes -> exactly 40 URL-safe characters
        if len(body) == _RANDOM_CHARS:
            return PREFIX + body


def new_key_id() -> str:
    """Short random id, used in `key:<id>` subjects, usage rows and the admin API."""
    return secrets.token_hex(6)


def is_virtual_key(token: str) -> bool:
    """Has the shape of a key this gateway mints (checked before any lookup)."""
    return bool(_SHAPE.match(token))


def looks_virtual(token: str) -> bool:
    """Meant as a virtual key (its prefix), whether or not well formed."""
    return token.startswith(PREFIX)


def hash_key(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def display_prefix(token: str) -> str:
    return token[:DISPLAY_CHARS]
