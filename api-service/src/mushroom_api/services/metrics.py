"""Prometheus metrics and the middleware that records every request."""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

REGISTRY = CollectorRegistry(auto_describe=True)

REQUESTS = Counter(
    "mushroom_api_requests_total",
    "HTTP requests by route template, method and status code.",
    ["route", "method", "status"],
    registry=REGISTRY,
)
LATENCY = Histogram(
    "mushroom_api_request_seconds",
    "HTTP request latency by route template and status code.",
    ["route", "method", "status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
    registry=REGISTRY,
)
PREDICTIONS = Counter(
    "mushroom_api_predictions_total",
    "Answered predictions by verdict and top species.",
    ["verdict", "species"],
    registry=REGISTRY,
)
CONFIDENCE = Histogram(
    "mushroom_api_top_probability",
    "Calibrated probability of the top species.",
    buckets=(0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 1.0),
    registry=REGISTRY,
)
MUSHROOM_SCORE = Histogram(
    "mushroom_api_mushroom_score",
    "The detector's mushroom score of answered photos.",
    buckets=(0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0),
    registry=REGISTRY,
)
MODEL_RELOADS = Counter(
    "mushroom_api_model_reloads_total",
    "Model reload attempts by outcome.",
    ["outcome"],
    registry=REGISTRY,
)
PREDICTION_LOG = Counter(
    "mushroom_api_prediction_log_total",
    "Predictions handed to the prediction log by outcome: written, dropped_queue_full, "
    "dropped_store_error.",
    ["outcome"],
    registry=REGISTRY,
)
PREDICTION_LOG_QUEUE = Gauge(
    "mushroom_api_prediction_log_queue",
    "Predictions waiting to be written to the database.",
    registry=REGISTRY,
)
MODEL_RELOAD_FAILURES = Counter(
    "mushroom_api_model_reload_failures_total",
    "Reloads that kept the served model, by reason (registry_unavailable, invalid_pointer, "
    "bundle_missing, bundle_damaged, load_failed, no_champion, no_model).",
    ["reason"],
    registry=REGISTRY,
)
MODEL_WATCH_ERRORS = Counter(
    "mushroom_api_model_watch_errors_total",
    "Champion polls of the reload watcher that failed, by error type (the watcher keeps going).",
    ["kind"],
    registry=REGISTRY,
)


_UNROUTED_PATHS = frozenset({"/predict", "/explain", "/feedback"})


def observe_prediction(verdict: str, species: str, probability: float, score: float | None) -> None:
    """Count one answered prediction."""
    PREDICTIONS.labels(verdict=verdict, species=species).inc()
    CONFIDENCE.observe(probability)
    if score is not None:
        MUSHROOM_SCORE.observe(score)


class MetricsMiddleware:
    """Counts requests and their latency by route template (not raw path: bounded labels)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_with_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_with_status)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None)
            if template is None:
                # Refused before routing (413, 429): keep the path only when it is a known route.
                path = scope.get("path", "")
                template = path if path in _UNROUTED_PATHS else "unmatched"
            labels = {"route": template, "method": scope.get("method", ""), "status": str(status)}
            REQUESTS.labels(**labels).inc()
            LATENCY.labels(**labels).observe(time.perf_counter() - started)
