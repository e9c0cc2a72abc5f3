"""Who may call the gateway.

With `GATEWAY_MASTER_KEY` set, clients send it as a bearer token (the OpenAI SDK's `api_key`).
Without it the gateway is open only to clients on loopback, so a fresh install on a laptop
works with no setup and is never an open relay on a network.
"""

from __future__ import annotations

import hmac
import ipaddress

from starlette.requests import Request

from gateway.errors import AuthenticationFailed, PermissionDenied


class Authenticator:
    def __init__(self, master_key: str | None) -> None:
        self._master_key = master_key.encode() if master_key else None

    @property
    def loopback_only(self) -> bool:
        return self._master_key is None

    def check(self, request: Request) -> None:
        if self._master_key is None:
            if not _is_loopback(request.client.host if request.client else None):
                raise PermissionDenied(
                    "This gateway has no GATEWAY_MASTER_KEY and only accepts clients on "
                    "loopback."
                )
            return
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if not token:
            token = request.headers.get("x-api-key", "")
        elif scheme.lower() != "bearer":
            token = ""
        if not token:
            raise AuthenticationFailed(
                "You didn't provide an API key. Send it as 'Authorization: Bearer <key>'."
            )
        if not hmac.compare_digest(token.strip().encode(), self._master_key):
            raise AuthenticationFailed("Incorrect API key provided.")


def _is_loopback(host: str | None) -> bool:
    if not host:
        return False
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"
