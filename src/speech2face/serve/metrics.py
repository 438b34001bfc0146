"""What an operator sees at ``GET /metrics`` (Prometheus' text format): requests by route and
status, latency, batch sizes, queue depth, and refusals by reason. One registry per app, so two
apps in one process (tests) do not share counts."""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

LATENCY_BUCKETS = (0.025, 0.05, 0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 6.4, 12.8, 30.0)  # s
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("speech2face_requests", "HTTP requests answered, by route and status",
                                ["route", "status"], registry=self.registry)
        self.latency = Histogram("speech2face_request_seconds", "time from request to answer, by route",
                                 ["route"], buckets=LATENCY_BUCKETS, registry=self.registry)
        self.batch_size = Histogram("speech2face_batch_size", "reconstructions run together in one batch",
                                    buckets=BATCH_BUCKETS, registry=self.registry)
        self.queue_depth = Gauge("speech2face_queue_depth", "reconstruction requests waiting for a batch",
                                 registry=self.registry)
        self.refusals = Counter("speech2face_refusals", "requests refused, by reason", ["reason"], registry=self.registry)
        self.dropped = Counter("speech2face_dropped", "queued requests dropped before they ran, by reason",
                               ["reason"], registry=self.registry)

    def text(self) -> bytes:
        return generate_latest(self.registry)


def refusal_reason(status: int, message: str) -> str:
    """A short, bounded label for why a request was refused (no user text in metric labels)."""
    text = message.lower()
    for reason, words in (("no speech", ("no speech", "too little speech")), ("silent", ("silent",)),
                          ("too short", ("too short", "shorter than")), ("empty", ("empty",)),
                          ("no face", ("no face",)), ("too large", ("larger than", "too large", "megapixel")),
                          ("unreadable", ("unreadable", "cannot be decoded", "not an audio", "malformed",
                                          "cannot identify", "truncated", "not an image")),
                          ("time limit", ("time limit", "busy"))):
        if any(w in text for w in words):
            return reason
    if status == 422:
        return "bad request"
    return "other"


def _route_label(scope) -> str:
    """The matched route's template (the router writes it into the scope), or the mount a path
    lies under (/docs' assets), or 'unmatched'."""
    route = scope.get("route")
    if route is not None:
        return route.path
    for candidate in getattr(getattr(scope.get("app"), "router", None), "routes", []):
        mount = getattr(candidate, "path", None)
        if mount and hasattr(candidate, "app") and not hasattr(candidate, "endpoint") \
                and scope.get("path", "").startswith(mount + "/"):
            return mount
    return "unmatched"


class CountRequests:
    """ASGI middleware: every answered request by route template and status, and its latency."""

    def __init__(self, app, metrics: Metrics) -> None:
        self.app, self.metrics = app, metrics

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        start, status = time.perf_counter(), [500]

        async def send_status(message):
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            route = _route_label(scope)
            self.metrics.requests.labels(route=route, status=str(status[0])).inc()
            self.metrics.latency.labels(route=route).observe(time.perf_counter() - start)
