"""ASGI middleware in front of every route: API-key check and request-body size limit.

Pure ASGI (not BaseHTTPMiddleware) so streaming responses and client-disconnect detection pass through
untouched. Without the key every route but /health answers 401 (the `Bearer` scheme is matched
case-insensitively, the key in constant time); bodies over the limit answer 413, whether they declare
their length or arrive chunked. Every body is read here, up to the limit, before the route runs, each
piece within `read_timeout` seconds: a client that stalls mid-body gets 408 instead of holding a
connection (and the process, on shutdown) open.
"""

from __future__ import annotations

import asyncio
import hmac

from presso.server.api.errors import error_response

OPEN_PATHS = frozenset({"/health"})


class GuardMiddleware:
    def __init__(self, app, api_key: str | None, max_body_bytes: int, read_timeout: float = 30.0):
        self.app = app
        self.api_key = api_key
        self.max_body_bytes = max_body_bytes
        self.read_timeout = read_timeout

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or [])
        if self.api_key and scope["path"] not in OPEN_PATHS:
            scheme, _, given = headers.get(b"authorization", b"").decode("latin-1").strip().partition(" ")
            ok = hmac.compare_digest(given.strip().encode(), self.api_key.encode())
            if not (ok and scheme.lower() == "bearer"):
                response = error_response(401, "Invalid or missing API key.", code="invalid_api_key",
                                          headers={"WWW-Authenticate": "Bearer"})
                return await response(scope, receive, send)
        length = headers.get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_body_bytes:
            response = error_response(413, f"Request body of {int(length)} bytes exceeds the limit of "
                                      f"{self.max_body_bytes} bytes.", code="request_too_large")
            return await response(scope, receive, send)
        if scope.get("method") in ("POST", "PUT", "PATCH"):  # read it all (up to the limit) first
            messages, size = [], 0
            while True:
                try:
                    message = await asyncio.wait_for(receive(), self.read_timeout)
                except TimeoutError:
                    response = error_response(408, f"The request body did not arrive within {self.read_timeout:g} s.",
                                              code="request_timeout")
                    return await response(scope, receive, send)
                messages.append(message)
                size += len(message.get("body", b""))
                if size > self.max_body_bytes:
                    response = error_response(413, f"Request body exceeds the limit of {self.max_body_bytes} "
                                              "bytes.", code="request_too_large")
                    return await response(scope, receive, send)
                if message["type"] != "http.request" or not message.get("more_body", False):
                    break
            return await self.app(scope, _replay(messages, receive), send)
        return await self.app(scope, receive, send)


def _replay(messages: list[dict], receive):
    """A receive() that returns the buffered body messages first, then the live channel (disconnects)."""
    pending = list(messages)

    async def replay():
        return pending.pop(0) if pending else await receive()

    return replay
