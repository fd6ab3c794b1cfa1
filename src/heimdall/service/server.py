"""`heimdall serve`: the API under uvicorn, one process (it owns the embedded worker)."""

from __future__ import annotations

import logging

from heimdall.settings import Settings

__all__ = ["DEFAULT_HOST", "DEFAULT_PORT", "KEEP_ALIVE_S", "LOOPBACK_HOSTS", "serve"]

log = logging.getLogger("heimdall.service")

#: Addresses and names that only this machine reaches.
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8002
#: Seconds an idle keep-alive connection stays open. Longer than the idle expiry of common
#: client pools (httpx and requests: 5 s; proxies: up to 60 s): when the server closes
#: first, a client may send its next request into the closing connection and get a reset.
KEEP_ALIVE_S = 75


def serve(host: str = DEFAULT_HOST, port: int = DEFAULT_PORT, settings: Settings | None = None) -> None:
    """Run the API until interrupted. Loopback by default: put a TLS proxy in front to expose it."""
    import uvicorn

    from heimdall.logging_setup import configure_logging
    from heimdall.service.app import create_app

    settings = settings or Settings()
    configure_logging(settings.log_level)
    if host not in LOOPBACK_HOSTS and not settings.api_token:
        log.warning("serving on %s without HEIMDALL_API_TOKEN: anyone who can reach it can change models and data", host)
    if host not in LOOPBACK_HOSTS and set(settings.trusted_hosts) <= set(LOOPBACK_HOSTS):
        log.warning(
            "serving on %s but HEIMDALL_TRUSTED_HOSTS names only loopback: requests by this machine's name or "
            "address get 400 until HEIMDALL_TRUSTED_HOSTS lists them", host,
        )
    app = create_app(settings)
    uvicorn.run(
        app,
        host=host,
        port=port,
        workers=1,
        log_level=settings.log_level.lower(),
        server_header=False,
        proxy_headers=False,
        timeout_graceful_shutdown=30,
        timeout_keep_alive=KEEP_ALIVE_S,
    )
