"""Bearer-token authentication shared by the REST and gRPC front ends.

The token is read from ``--auth-token-file`` (``ServerConfig.auth_token_file``) inside each front-end process,
so it never travels through Ray. REST requests carry ``Authorization: Bearer <token>``; gRPC calls carry the
same value in the ``authorization`` metadata key. Health endpoints stay open (``/v2/health/live``,
``/v2/health/ready``; gRPC ``ServerLive``, ``ServerReady``) so probes and load balancers need no secret.
Tokens are compared in constant time.
"""

from __future__ import annotations

import hmac
from pathlib import Path

__all__ = ["OPEN_PATHS", "OPEN_RPCS", "BearerAuth"]

#: REST paths answered without a token
OPEN_PATHS = frozenset({"/v2/health/live", "/v2/health/ready"})
#: gRPC methods answered without a token
OPEN_RPCS = frozenset({"ServerLive", "ServerReady"})


class BearerAuth:
    """Checks ``Bearer <token>`` values; with no token file every request passes."""

    def __init__(self, token_file: str | None = None) -> None:
        self._expected: bytes | None = None
        if token_file is not None:
            token = Path(token_file).read_text().strip()
            if not token:
                raise ValueError(f"the auth token file {token_file} is empty")
            self._expected = f"Bearer {token}".encode()

    @property
    def enabled(self) -> bool:
        return self._expected is not None

    def allows(self, authorization: str | bytes | None) -> bool:
        """True when auth is off or ``authorization`` is exactly ``Bearer <token>``."""
        if self._expected is None:
            return True
        if authorization is None:
            return False
        got = authorization.encode("latin-1", "replace") if isinstance(authorization, str) else authorization
        return hmac.compare_digest(got.strip(), self._expected)

    @staticmethod
    def problem(authorization: str | bytes | None, key: str, carrier: str) -> str:
        """The error message: what was missing or wrong, and where the token goes (``key`` of the ``carrier``:
        the ``Authorization`` header, the ``authorization`` metadata)."""
        if authorization is None:
            return (
                f"missing bearer token: send the {carrier} '{key}: Bearer <token>' (the server uses --auth-token-file)"
            )
        return f"wrong bearer token in the {key} {carrier} (the server uses --auth-token-file)"
