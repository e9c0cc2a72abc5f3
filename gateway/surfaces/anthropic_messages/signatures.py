"""Signatures on the thinking blocks the gateway emits, so it can trust them when they return.

Anthropic clients (Claude Code) send every thinking block back in the history with its
`signature`, and drop blocks that have none. The reasoning in them must reach DeepSeek as the
assistant turn's `reasoning_content`, but only reasoning this gateway produced: a block signed
by Anthropic (a session that started on the real API) or written by the client is not ours to
present to the model as its own thinking. So each block is signed with an HMAC of its text and
verified on the way back in.

The key, in order of preference: `anthropic.signing_secret` from the config; else one derived
from the master key (an HMAC of a fixed label, so the master key itself never signs anything);
else random per process. With a random key, blocks signed by one process do not verify on
another or after a restart (their reasoning is dropped, and DeepSeek's own recall of tool-call
reasoning takes over): replicas behind one load balancer must share `signing_secret` or the
master key.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import os

_VERSION = "sy1."  # bump when what is signed changes; old signatures then fail to verify
_DERIVE_LABEL = b"switchyard anthropic thinking signature v1"

_log = logging.getLogger(__name__)


class ThinkingSigner:
    __slots__ = ("_secret",)

    def __init__(self, secret: bytes) -> None:
        if not secret:
            raise ValueError("the signing secret must not be empty")
        self._secret = secret

    @classmethod
    def from_secrets(cls, signing_secret: str | None, master_key: str | None) -> ThinkingSigner:
        """The configured secret, else one derived from the master key, else a random one."""
        if signing_secret:
            return cls(signing_secret.encode())
        if master_key:
            return cls(hmac.new(master_key.encode(), _DERIVE_LABEL, hashlib.sha256).digest())
        _log.info(
            "anthropic.signing_secret and master_key are unset: thinking signatures use a "
            "random per-process key and do not verify across replicas or restarts"
        )
        return cls(os.urandom(32))

    def sign(self, text: str) -> str:
        return _VERSION + self._mac(text)

    def verify(self, text: str, signature: str) -> bool:
        """True when `signature` is this key's signature of exactly `text` (constant time)."""
        if not signature.startswith(_VERSION):
            return False
        expected = self._mac(text).encode()
        return hmac.compare_digest(expected, signature[len(_VERSION):].encode())

    def _mac(self, text: str) -> str:
        data = text.encode("utf-8", "surrogatepass")
        digest = hmac.new(self._secret, data, hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
