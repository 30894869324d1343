"""GET /healthz, GET /readyz and GET /metrics."""

from __future__ import annotations

import os

from fastapi import APIRouter, HTTPException, Response, status
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest, multiprocess

from mushroom_api.deps import ModelHolderDep
from mushroom_api.schemas import ErrorPublic, StatusPublic
from mushroom_api.services.metrics import REGISTRY

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model_exclude_none=True)
def healthz() -> StatusPublic:
    """Alive: the process answers."""
    return StatusPublic(status="ok")


@router.get(
    "/readyz",
    response_model_exclude_none=True,
    responses={503: {"model": ErrorPublic, "description": "Model not loaded"}},
)
def readyz(holder: ModelHolderDep) -> StatusPublic:
    """Ready: a model is loaded and can answer /predict ("degraded" says why it is a fallback)."""
    if holder.current is None:
        reason = f" ({holder.last_error})" if holder.last_error else ""
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE, f"The model is not loaded yet{reason}."
        )
    if holder.degraded_reason is not None:
        return StatusPublic(status="degraded", reason=f"{holder.degraded_reason}.")
    return StatusPublic(status="ok")


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST: {}}, "description": "Prometheus text"}},
)
def prometheus_metrics() -> Response:
    """Prometheus metrics: requests, latency, verdicts, species, confidence."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        # Several worker processes (mushroom-api --workers N): add up every worker's counters.
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]  # unannotated upstream
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)
