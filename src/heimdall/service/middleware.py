"""The API's guard, a plain ASGI middleware: bearer token, body size limit, last-resort 500.

Written at the ASGI level (not as a FastAPI dependency) so it also covers the OpenAPI
pages and unknown paths, and can refuse a body before it is read.
"""

from __future__ import annotations

import hmac
import json
import logging

from fastapi import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["MAX_BODY_BYTES", "GuardMiddleware", "QueueLimitMiddleware", "reply"]

log = logging.getLogger("heimdall.service")

#: Largest request body accepted (a localisation request of 1024 receivers is ~200 KiB).
MAX_BODY_BYTES = 1024 * 1024
#: Paths open without a token (load balancers probe them).
OPEN_PATHS = frozenset({"/health"})


async def reply(send: Send, status: int, detail: str, headers: list[tuple[bytes, bytes]] | None = None) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), *(headers or [])],
        }
    )
    await send({"type": "http.response.body", "body": body})


class GuardMiddleware:
    """401 without the configured bearer token, 413 for a body over the limit, 500 without a trace."""

    def __init__(self, app: ASGIApp, token: str | None, max_body_bytes: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.token = token.encode() if token else None
        self.max_body_bytes = max_body_bytes

    def _authorized(self, scope: Scope) -> bool:
        if self.token is None or scope["path"] in OPEN_PATHS:
            return True
        for name, value in scope.get("headers", []):
            if name == b"authorization":
                scheme, _, credentials = value.partition(b" ")
                return scheme.lower() == b"bearer" and hmac.compare_digest(credentials.strip(), self.token)
        return False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if not self._authorized(scope):
            await reply(send, 401, "missing or invalid bearer token", [(b"www-authenticate", b"Bearer")])
            return
        headers = dict(scope.get("headers", []))
        declared = headers.get(b"content-length")
        if declared is not None:
            if not declared.isdigit():
                await reply(send, 400, "invalid Content-Length header")
                return
            if int(declared) > self.max_body_bytes:
                await reply(send, 413, f"request body over {self.max_body_bytes} bytes")
                return
        received = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    # FastAPI re-raises HTTPException from body reading; it becomes the 413.
                    raise HTTPException(413, f"request body over {self.max_body_bytes} bytes")
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except Exception as exc:  # noqa: BLE001 - the last resort: one log line, a bare 500
            log.error("%s %s failed: internal error (%s)", scope.get("method"), scope.get("path"), type(exc).__name__)
            if not started:
                await reply(send, 500, "internal error")



class QueueLimitMiddleware:
    """At most `max_in_flight` requests to `paths` at once; beyond, 503 with Retry-After.

    Requests past the worker threads wait in the event loop; without a bound a burst
    queues without end and every answer comes late. Refused at once, a client can back
    off and retry (the response says when).
    """

    def __init__(self, app: ASGIApp, max_in_flight: int, paths: frozenset[str]) -> None:
        self.app = app
        self.max_in_flight = max_in_flight
        self.paths = paths
        self.in_flight = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] not in self.paths:
            await self.app(scope, receive, send)
            return
        # One event loop: the check and the increment run without a switch between them.
        if self.in_flight >= self.max_in_flight:
            await reply(send, 503, f"server busy: {self.in_flight} requests in progress; retry shortly",
                        [(b"retry-after", b"1")])
            return
        self.in_flight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_flight -= 1
