"""Identifiers in OpenAI's style (`resp_...`, `msg_...`, `rs_...`, `fc_...`): minted by the
gateway, since one response may be several upstream attempts and must keep one id."""

from __future__ import annotations

import secrets


def new_id(prefix: str) -> str:
    """`<prefix>_` and 48 random hex digits, as long as OpenAI's own ids."""
    return f"{prefix}_{secrets.token_hex(24)}"
