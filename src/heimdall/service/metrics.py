"""Prometheus metrics of one API instance (`GET /metrics`), with the standard client library.

Each app owns its own `CollectorRegistry`, so two apps in one process (tests) never share
or collide on a counter. Request counts and latencies come from an ASGI middleware that
sees every response, errors included; job counts and queue depth are read from the jobs
table when Prometheus scrapes, so they are right whichever process changed them.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Iterable, Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.routing import compile_path
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from heimdall.serving.rollout import Answer, ShadowOutcome

__all__ = ["ServiceMetrics", "MetricsMiddleware", "RouteTemplates", "MODEL_STATE_KEY"]

log = logging.getLogger("heimdall.service")

#: Key of the request state where a route records which model answered (a metric label).
MODEL_STATE_KEY = "model_version"
#: Request latency buckets, seconds: a localisation takes milliseconds, a job submission tens.
LATENCY_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
#: Distance buckets, metres: from a dense urban network (tens of m) to a regional one (100 km).
DISTANCE_BUCKETS_M = (10.0, 30.0, 100.0, 300.0, 1e3, 3e3, 1e4, 3e4, 1e5, 3e5, 1e6)


class _JobCollector(Collector):
    """Job counts by state and the queue depth, read at scrape time."""

    def __init__(self, job_counts: Callable[[], dict[str, int]]) -> None:
        self.job_counts = job_counts

    def collect(self) -> Iterator[Metric]:
        try:
            counts = self.job_counts()
        except Exception as exc:  # noqa: BLE001 - a scrape must not fail because the database did
            log.warning("job counts unavailable for /metrics: %s", type(exc).__name__)
            return
        jobs = GaugeMetricFamily("heimdall_jobs", "Jobs in the jobs table by state.", labels=["state"])
        for state, count in sorted(counts.items()):
            jobs.add_metric([state], count)
        yield jobs
        yield GaugeMetricFamily("heimdall_queue_depth", "Jobs queued and not yet started.", value=counts.get("queued", 0))


class ServiceMetrics:
    """The API's metrics in a registry of their own."""

    def __init__(self, job_counts: Callable[[], dict[str, int]]) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "heimdall_http_requests", "HTTP requests by route template, method, status and answering model.",
            ["route", "method", "status", "model_version"], registry=self.registry,
        )
        self.latency = Histogram(
            "heimdall_http_request_duration_seconds", "Time from request to the end of the response, seconds.",
            ["route", "model_version"], buckets=LATENCY_BUCKETS_S, registry=self.registry,
        )
        self.sigma_major = Histogram(
            "heimdall_localization_sigma_major_m", "1-sigma major semi-axis of answered localisations, metres.",
            ["model_version", "role"], buckets=DISTANCE_BUCKETS_M, registry=self.registry,
        )
        self.shadow_distance = Histogram(
            "heimdall_shadow_disagreement_m", "Distance between the served and the shadow model's positions, metres.",
            ["served_model", "shadow_model"], buckets=DISTANCE_BUCKETS_M, registry=self.registry,
        )
        self.shadow_failures = Counter(
            "heimdall_shadow_failures", "Shadow localisations that raised (logged; the request was answered).",
            registry=self.registry,
        )
        self.registry.register(_JobCollector(job_counts))

    def observe_answer(self, answer: Answer) -> None:
        self.sigma_major.labels(answer.body["model"], answer.role).observe(answer.body["sigma_major_m"])

    def observe_shadow(self, outcome: ShadowOutcome | None) -> None:
        if outcome is None:
            self.shadow_failures.inc()
            return
        self.shadow_distance.labels(outcome.served_model, outcome.shadow_model).observe(outcome.distance_m)

    def render(self) -> bytes:
        """The registry in Prometheus' text exposition format."""
        return generate_latest(self.registry)


class RouteTemplates:
    """Maps a request path to the route template it matches (`/v1/datasets/{name}`).

    Built lazily from the app's paths on first use (routes are all added by then); literal
    templates are tried before those with parameters, as the router does for ours.
    """

    def __init__(self, templates: Callable[[], Iterable[str]]) -> None:
        self._source = templates
        self._compiled: list[tuple[re.Pattern[str], str]] | None = None

    def match(self, path: str) -> str:
        if self._compiled is None:
            ordered = sorted(set(self._source()), key=lambda t: (t.count("{"), t))
            self._compiled = [(compile_path(t)[0], t) for t in ordered]
        return next((template for regex, template in self._compiled if regex.match(path)), "unmatched")


class MetricsMiddleware:
    """Counts and times every HTTP request by route template (not raw path: bounded labels)."""

    def __init__(self, app: ASGIApp, metrics: ServiceMetrics, templates: RouteTemplates) -> None:
        self.app = app
        self.metrics = metrics
        self.templates = templates

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500
        # The route writes the answering model here; the dict is shared with its Request.
        scope.setdefault("state", {})

        async def recording_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, recording_send)
        finally:
            route = self.templates.match(scope.get("path", ""))
            model = str(scope["state"].get(MODEL_STATE_KEY, ""))
            self.metrics.requests.labels(route, scope.get("method", ""), str(status), model).inc()
            self.metrics.latency.labels(route, model).observe(time.perf_counter() - start)
