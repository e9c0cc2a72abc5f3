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
from gateway.keys.principal import MASTER, Principal


class Authenticator:
    def __init__(self, master_key: str | None) -> None:
        self._master_key = master_key.encode() if master_key else None

    @property
    def loopback_only(self) -> bool:
        return self._master_key is None

    def check_request(self, request: Request) -> None:
        self.check(
            request.headers.get("authorization"),
            request.headers.get("x-api-key"),
            request.client.host if request.client else None,
        )

    async def authenticate(
        self, authorization: str | None, api_key: str | None, client: str | None
    ) -> Principal:
        """Who is calling; raises unless they may use the gateway. (Virtual keys extend this in
        gateway/keys; here the only identities are the master key and a loopback client.)"""
        self.check(authorization, api_key, client)
        return MASTER

    def check(self, authorization: str | None, api_key: str | None, client: str | None) -> None:
        """Raise unless the caller may use the gateway."""
        if self._master_key is None:
            if not _is_loopback(client):
                raise PermissionDenied(
                    "This gateway has no GATEWAY_MASTER_KEY and only accepts clients on "
                    "loopback."
                )
            return
        token = ""
        if authorization:
            scheme, _, value = authorization.partition(" ")
            token = value.strip() if scheme.lower() == "bearer" else ""
        elif api_key:
            token = api_key.strip()
        if not token:
            raise AuthenticationFailed(
                "You didn't provide an API key. Send it as 'Authorization: Bearer <key>'."
            )
        if not hmac.compare_digest(token.encode(), self._master_key):
            raise AuthenticationFailed("Incorrect API key provided.")


def _is_loopback(host: str | None) -> bool:
    if not host:
        return False
    if host == "127.0.0.1" or host == "::1":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"
