"""The gateway's one error tree.

Every failure a client can see is a `GatewayError`: data (status, kind, message, code, param,
headers), never a wire format. Each surface renders errors in its own API's shape
(gateway/surfaces/*/errors.py), so no library exception or traceback reaches a client. The
`error_type` names below are the OpenAI kinds, used as the neutral classification.

    GatewayError
    ├── InvalidRequest          400 invalid_request_error   (bad JSON, wrong types, bad fields)
    ├── AuthenticationFailed    401 authentication_error    (missing or wrong gateway key)
    ├── PermissionDenied        403 permission_error        (non-loopback client without a key)
    ├── NotFound                404 invalid_request_error   (unknown route)
    ├── ModelNotFound           404 invalid_request_error   code model_not_found
    ├── RateLimited             429 rate_limit_error        (a key's or team's rpm/tpm)
    ├── QuotaExceeded           429 insufficient_quota      (a key's or team's budget)
    ├── NoProviderConfigured    503 api_error               (model known, no upstream has a key)
    └── UpstreamError           status mapped from the upstream's answer (see below)
"""

from __future__ import annotations


class GatewayError(Exception):
    """Base of every error a client may see."""

    status: int = 500
    error_type: str = "api_error"
    default_code: str | None = None

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        status: int | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code if code is not None else self.default_code
        if status is not None:
            self.status = status
        self.headers: dict[str, str] = headers or {}

    @property
    def reason(self) -> str:
        """Short, gateway-chosen label for metering and metrics (bounded: never client text)."""
        return self.code or self.error_type


class InvalidRequest(GatewayError):
    status = 400
    error_type = "invalid_request_error"


class AuthenticationFailed(GatewayError):
    status = 401
    error_type = "authentication_error"
    default_code = "invalid_api_key"


class PermissionDenied(GatewayError):
    status = 403
    error_type = "permission_error"


class NotFound(GatewayError):
    status = 404
    error_type = "invalid_request_error"
    default_code = "not_found"


class ModelNotFound(GatewayError):
    status = 404
    error_type = "invalid_request_error"
    default_code = "model_not_found"


class RateLimited(GatewayError):
    status = 429
    error_type = "rate_limit_error"
    default_code = "rate_limit_exceeded"


class QuotaExceeded(GatewayError):
    """A budget is spent: OpenAI's `insufficient_quota`, which SDKs do not retry."""

    status = 429
    error_type = "insufficient_quota"
    default_code = "insufficient_quota"


class NoProviderConfigured(GatewayError):
    status = 503
    error_type = "api_error"
    default_code = "no_provider_configured"


# How an upstream status reaches the client. The client's own mistakes (400/404/422) are
# returned as they are; a 401/403/402 means the *gateway's* credentials or account are wrong,
# which the client cannot fix, so it becomes a 502 rather than a misleading auth error.
_CLIENT_STATUS_FOR_UPSTREAM = {
    400: 400,
    404: 404,
    413: 413,
    422: 422,
    401: 502,
    402: 502,
    403: 502,
    408: 504,
    429: 429,
    500: 502,
    502: 502,
    503: 503,
    504: 504,
}

_TYPE_FOR_STATUS = {
    400: "invalid_request_error",
    404: "invalid_request_error",
    413: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
}

# Statuses after which another target may succeed where this one failed.
_RETRYABLE_STATUSES = frozenset({401, 402, 403, 408, 429, 500, 502, 503, 504})


class UpstreamError(GatewayError):
    """An upstream failed or refused; carries what failover and metering need to know."""

    def __init__(
        self,
        message: str,
        *,
        provider: str,
        upstream_status: int | None,
        code: str | None = None,
        param: str | None = None,
        retry_after: float | None = None,
        retryable: bool | None = None,
        quota: str | None = None,
    ) -> None:
        status = (
            _CLIENT_STATUS_FOR_UPSTREAM.get(upstream_status, 502)
            if upstream_status is not None
            else 502
        )
        headers = {"retry-after": str(int(retry_after + 0.999))} if retry_after else None
        super().__init__(message, param=param, code=code, status=status, headers=headers)
        self.error_type = _TYPE_FOR_STATUS.get(status, "api_error")
        self.provider = provider
        self.upstream_status = upstream_status
        self.retry_after = retry_after
        # The provider account is out of quota ("session" / "weekly" usage limit, "balance"):
        # failover takes the account out for long, not for a Retry-After.
        self.quota = quota
        self.retryable = (
            retryable
            if retryable is not None
            else upstream_status is None or upstream_status in _RETRYABLE_STATUSES
        )

    @property
    def reason(self) -> str:
        return self.error_type  # an upstream's own codes are unbounded: not a label

    @property
    def outcome(self) -> str:
        """Short label for headers and metrics: the upstream status or the failure kind."""
        return str(self.upstream_status) if self.upstream_status is not None else (
            self.code or "error"
        )
