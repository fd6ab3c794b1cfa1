"""The FastAPI application factory: settings, context, job queue and model cache built here."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from heimdall import __version__
from heimdall.jobs.queue import JobQueue
from heimdall.jobs.repository import job_counts
from heimdall.pipelines.context import open_context
from heimdall.serving.models import LocalizerCache
from heimdall.serving.rollout import Rollout
from heimdall.service.browser import BrowserGuardMiddleware
from heimdall.service.errors import install_error_handlers
from heimdall.service.metrics import MetricsMiddleware, RouteTemplates, ServiceMetrics
from heimdall.service.middleware import MAX_BODY_BYTES, GuardMiddleware, QueueLimitMiddleware
from heimdall.service.routes import datasets, health, jobs, localize, metrics, models, seeds
from heimdall.service.routes.docs import install_docs
from heimdall.settings import Settings

__all__ = ["create_app"]

log = logging.getLogger("heimdall.service")

#: Paths whose requests the queue limit bounds.
LOCALIZE_PATHS = frozenset({"/v1/localize"})


def create_app(settings: Settings | None = None, max_body_bytes: int = MAX_BODY_BYTES) -> FastAPI:
    """The API over `settings` (default: built from the environment, now, not at import).

    Without `broker_url`, jobs run in a background thread of this process (start it with
    the app's lifespan, e.g. `with TestClient(app)` or uvicorn); with it, on Celery workers.
    """
    settings = settings or Settings()
    context = open_context(settings)
    queue = JobQueue.for_context(context)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        recovered = queue.recover()
        if any(recovered.values()):
            log.warning("jobs left by a previous server: %s", recovered)
        try:
            yield
        finally:
            queue.close()
            # The pool's connections would otherwise outlive the server (PostgreSQL warns).
            context.close()

    app = FastAPI(
        title="Heimdall",
        version=__version__,
        summary="Locate a radio transmitter from what a network of receivers heard of it.",
        lifespan=lifespan,
        # Served by install_docs from the package's own copies (no CDN).
        docs_url=None,
        redoc_url=None,
        # A slash redirect would build its Location from the request's Host header.
        redirect_slashes=False,
    )
    app.state.settings = settings
    app.state.context = context
    app.state.queue = queue
    app.state.localizers = LocalizerCache(settings)
    app.state.rollout = Rollout(app.state.localizers, settings)
    app.state.metrics = ServiceMetrics(lambda: job_counts(context.db))
    install_error_handlers(app, settings)
    app.add_middleware(QueueLimitMiddleware, max_in_flight=settings.max_queued_localize, paths=LOCALIZE_PATHS)
    app.add_middleware(GuardMiddleware, token=settings.api_token, max_body_bytes=max_body_bytes)
    # Outside the token check: a rebinding page is refused before anything else is looked at.
    app.add_middleware(BrowserGuardMiddleware, trusted_hosts=settings.trusted_hosts)
    # Added last, so outermost: refused (401/413) and failed (500) requests are counted too.
    templates = RouteTemplates(lambda: [*app.openapi()["paths"], *(r.path for r in app.routes if hasattr(r, "path"))])
    app.add_middleware(MetricsMiddleware, metrics=app.state.metrics, templates=templates)
    for module in (health, datasets, jobs, models, localize, metrics, seeds):
        app.include_router(module.router)
    app.include_router(health.version_router)
    install_docs(app)
    return app
