"""Prometheus metrics, and /metrics rendered off the event loop, cached, without private series.

Every label comes from a closed set (route templates, known methods, status codes, model labels,
outcome codes), so no client can grow what a scrape renders. Counts per species say what people
photograph: they are shown only to a scrape that carries the admin token; the public page has
the counts per verdict.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Iterable, Iterator

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.metrics_core import Metric

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
    "Answered predictions by verdict and top species (admin token only).",
    ["verdict", "species"],
    registry=REGISTRY,
)
VERDICTS = Counter(
    "mushroom_api_verdicts_total",
    "Answered predictions by verdict.",
    ["verdict"],
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


# Series only a scrape with the admin token sees (per-species counts).
PRIVATE_METRICS = frozenset({"mushroom_api_predictions"})
# HTTP methods counted under their own name; any other method is counted as "other".
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
OTHER_LABEL = "other"
# Paths refused before routing (413, 429) that keep their own label; anything else: "unmatched".
UNROUTED_PATHS = frozenset({"/predict", "/explain", "/feedback", "/species"})
UNMATCHED_ROUTE = "unmatched"


def method_label(method: str) -> str:
    """The method as a label: one of KNOWN_METHODS, else "other"."""
    return method if method in KNOWN_METHODS else OTHER_LABEL


def observe_request(
    template: str | None, path: str, method: str, status: int, seconds: float
) -> None:
    """Count one request under labels from closed sets."""
    route = (
        template if template is not None else (path if path in UNROUTED_PATHS else UNMATCHED_ROUTE)
    )
    labels = {"route": route, "method": method_label(method), "status": str(status)}
    REQUESTS.labels(**labels).inc()
    LATENCY.labels(**labels).observe(seconds)


def observe_prediction(verdict: str, species: str, probability: float, score: float | None) -> None:
    """Count one answered prediction."""
    PREDICTIONS.labels(verdict=verdict, species=species).inc()
    VERDICTS.labels(verdict=verdict).inc()
    CONFIDENCE.observe(probability)
    if score is not None:
        MUSHROOM_SCORE.observe(score)


class _Without:
    """A collector view that leaves out some metric families."""

    def __init__(self, source: CollectorRegistry, hidden: frozenset[str]) -> None:
        self.source = source
        self.hidden = hidden

    def collect(self) -> Iterator[Metric]:
        for family in self.source.collect():
            if family.name not in self.hidden:
                yield family


def _render(private: bool) -> bytes:
    source = REGISTRY
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        # Several worker processes (mushroom-api --workers N): add up every worker's counters.
        source = CollectorRegistry()
        multiprocess.MultiProcessCollector(source)  # type: ignore[no-untyped-call]  # unannotated upstream
    hidden: Iterable[str] = () if private else PRIVATE_METRICS
    return generate_latest(_Without(source, frozenset(hidden)))


SLOW_RENDER_S = 0.05


class MetricsPage:
    """The /metrics text, rendered in a thread and reused for a while.

    A page is reused for `max_age_s`, and a page that took over `SLOW_RENDER_S` to render for
    ten times as long as it took (so scrapes never spend more than a tenth of the time
    rendering). Scrapes that arrive
    while a render runs wait for that one render instead of starting more, and no render ever
    runs on the event loop (a big page would block /healthz while it does).
    """

    content_type = CONTENT_TYPE_LATEST

    def __init__(self, max_age_s: float) -> None:
        self.max_age_s = max_age_s
        # private -> (time the page may be reused until, page)
        self._pages: dict[bool, tuple[float, bytes]] = {}
        self._lock = threading.Lock()
        self._renders: dict[bool, asyncio.Future[bytes]] = {}

    def _cached(self, private: bool) -> bytes | None:
        with self._lock:
            found = self._pages.get(private)
        if found is not None and time.monotonic() < found[0]:
            return found[1]
        return None

    def _render_and_keep(self, private: bool) -> bytes:
        started = time.monotonic()
        page = _render(private)
        now = time.monotonic()
        with self._lock:
            took = now - started
            slow = 10 * took if took > SLOW_RENDER_S else 0.0
            self._pages[private] = (now + max(self.max_age_s, slow), page)
        return page

    async def render(self, *, private: bool) -> bytes:
        """The page (with the private series when `private`)."""
        cached = self._cached(private)
        if cached is not None:
            return cached
        running = self._renders.get(private)
        if running is None:
            running = asyncio.ensure_future(asyncio.to_thread(self._render_and_keep, private))
            self._renders[private] = running
            running.add_done_callback(lambda _done: self._renders.pop(private, None))
        return await asyncio.shield(running)
