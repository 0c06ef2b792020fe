"""ASGI middleware in front of every route: API-key check and request-body size limit.

Pure ASGI (not BaseHTTPMiddleware) so streaming responses and client-disconnect detection pass through
untouched. Without the key every route but /health answers 401; bodies over the limit answer 413.
"""

from __future__ import annotations

import hmac

from presso.server.api.errors import APIError, error_response

OPEN_PATHS = frozenset({"/health"})


class GuardMiddleware:
    def __init__(self, app, api_key: str | None, max_body_bytes: int):
        self.app = app
        self.api_key = api_key
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or [])
        if self.api_key and scope["path"] not in OPEN_PATHS:
            given = headers.get(b"authorization", b"").decode("latin-1")
            if not hmac.compare_digest(given.encode(), f"Bearer {self.api_key}".encode()):
                response = error_response(401, "Invalid or missing API key.", code="invalid_api_key",
                                          headers={"WWW-Authenticate": "Bearer"})
                return await response(scope, receive, send)
        length = headers.get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_body_bytes:
            response = error_response(413, f"Request body of {int(length)} bytes exceeds the limit of "
                                      f"{self.max_body_bytes} bytes.", code="request_too_large")
            return await response(scope, receive, send)
        return await self.app(scope, self._limited(receive), send)

    def _limited(self, receive):
        """Count streamed (chunked) body bytes too; over the limit the route fails with 413."""
        seen = 0

        async def wrapped():
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_body_bytes:
                    raise APIError(413, f"Request body exceeds the limit of {self.max_body_bytes} bytes.",
                                   code="request_too_large")
            return message

        return wrapped
