"""What keeps a web page in a user's browser from driving the API (CSRF, DNS rebinding).

A plain ASGI middleware, outermost but for metrics, so it covers every route, the OpenAPI
pages and unknown paths:

- **Trusted hosts.** The `Host` header must name one of `Settings.trusted_hosts` (default:
  the loopback names); only `GET /health` answers any host (load balancers probe it by
  address). A page on `attacker.example` whose DNS record is switched to
  127.0.0.1 (DNS rebinding) reaches the API as same-origin, but its requests still say
  `Host: attacker.example`, and are refused with 400.
- **State-changing requests** (POST, PUT, PATCH, DELETE) are refused with 403 when they carry
  an `Origin` other than the API's own, and with 415 unless they declare a JSON body
  (`Content-Type: application/json`) or carry a header no page can add without the API's
  consent (`X-Requested-With`, or `Authorization`). A cross-site form or `fetch` with a
  "simple" content type can set neither, so a page can no longer promote a model or
  delete a dataset on a server without a token.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from heimdall.service.middleware import OPEN_PATHS, reply

__all__ = ["BrowserGuardMiddleware", "STATE_CHANGING", "CUSTOM_HEADER", "SCRIPT_HEADERS", "host_name"]

STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
#: A header a cross-site page cannot add without a CORS preflight this API never grants.
CUSTOM_HEADER = b"x-requested-with"
#: What a script or another program adds to a body-less write (e.g. `curl -X DELETE -H ...`).
SCRIPT_HEADERS = {"X-Requested-With": "heimdall"}


def host_name(host: str) -> str:
    """The name of a `Host` value without its port, lower case (`[::1]:8002` -> `::1`)."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1:].split("]", 1)[0]
    if host.count(":") > 1:  # a bare IPv6 address, no port
        return host
    return host.rsplit(":", 1)[0] if ":" in host else host


def _is_json(content_type: bytes) -> bool:
    media = content_type.split(b";", 1)[0].strip().lower()
    return media == b"application/json" or (media.startswith(b"application/") and media.endswith(b"+json"))


class BrowserGuardMiddleware:
    """400 for an untrusted `Host`, 403 for a foreign `Origin`, 415 for a form-like write."""

    def __init__(self, app: ASGIApp, trusted_hosts: list[str]) -> None:
        self.app = app
        names = {host_name(h) for h in trusted_hosts if h.strip()}
        self.any_host = "*" in names
        self.trusted_hosts = frozenset(names - {"*"})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers: dict[bytes, bytes] = {}
        for name, value in scope.get("headers", []):
            headers.setdefault(name.lower(), value)
        host = headers.get(b"host", b"").decode("latin-1")
        # /health stays open to any Host (a load balancer probes by address); it reads nothing.
        if not self.any_host and host_name(host) not in self.trusted_hosts and scope["path"] not in OPEN_PATHS:
            # The Host is not echoed: it is the attacker's text.
            await reply(send, 400, "untrusted Host header (set HEIMDALL_TRUSTED_HOSTS to serve other names)")
            return
        if scope.get("method", "GET").upper() in STATE_CHANGING:
            origin = headers.get(b"origin")
            if origin is not None and not self._same_origin(origin.decode("latin-1"), host, scope):
                await reply(send, 403, "cross-origin request refused: the Origin header names another site")
                return
            if not (
                _is_json(headers.get(b"content-type", b""))
                or CUSTOM_HEADER in headers
                or b"authorization" in headers
            ):
                await reply(
                    send, 415,
                    "a request that changes state needs Content-Type: application/json or an X-Requested-With header",
                )
                return
        await self.app(scope, receive, send)

    @staticmethod
    def _same_origin(origin: str, host: str, scope: Scope) -> bool:
        scheme, sep, rest = origin.strip().lower().partition("://")
        if not sep or scheme != scope.get("scheme", "http"):
            return False
        return rest.rstrip("/") == host.strip().lower()
