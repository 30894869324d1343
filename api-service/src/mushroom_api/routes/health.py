"""GET /healthz, GET /readyz and GET /metrics."""

from __future__ import annotations

import os

from fastapi import APIRouter, HTTPException, Response, status
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest, multiprocess

from mushroom_api.deps import ModelHolderDep, PredictionLogDep, SettingsDep
from mushroom_api.schemas import ErrorPublic, StatusPublic
from mushroom_api.services.metrics import REGISTRY

router = APIRouter(tags=["health"])


# Both probes are `async def`: they run on the event loop itself, so no thread pool (busy with
# storage, decoding or the model) can make them wait past the probe timeout.
@router.get("/healthz", response_model_exclude_none=True)
async def healthz() -> StatusPublic:
    """Alive: the process answers."""
    return StatusPublic(status="ok")


@router.get(
    "/readyz",
    response_model_exclude_none=True,
    responses={
        503: {"model": ErrorPublic, "description": "Model not loaded, or predictions not logged"}
    },
)
async def readyz(
    holder: ModelHolderDep, log: PredictionLogDep, settings: SettingsDep
) -> StatusPublic:
    """Ready: a model answers /predict and the prediction log takes writes ("degraded": a
    stand-in model serves, and why)."""
    if holder.current is None:
        # The reason (storage URIs, local paths) is in the server log, not shown to the public.
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            "The model is not loaded yet; the server log says why.",
        )
    # Reads the writer's state only: readiness never waits on the database or the model pool.
    problem = log.health() if settings.log_predictions else None
    if problem is not None:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            f"{problem}, so answers are not logged for feedback and drift monitoring.",
        )
    if holder.degraded_reason is not None:
        return StatusPublic(status="degraded", reason=f"{holder.degraded_reason}.")
    return StatusPublic(status="ok")


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST: {}}, "description": "Prometheus text"}},
)
async def prometheus_metrics() -> Response:
    """Prometheus metrics: requests, latency, verdicts, species, confidence."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        # Several worker processes (mushroom-api --workers N): add up every worker's counters.
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]  # unannotated upstream
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)
