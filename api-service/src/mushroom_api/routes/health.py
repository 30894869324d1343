"""GET /healthz, GET /readyz and GET /metrics."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request, Response, status
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from mushroom_api.deps import ModelHolderDep
from mushroom_api.schemas import ErrorPublic, StatusPublic
from mushroom_api.services.metrics import REGISTRY
from mushroom_api.services.startup import StandIn

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
    responses={503: {"model": ErrorPublic, "description": "Model not loaded"}},
)
async def readyz(request: Request, holder: ModelHolderDep) -> StatusPublic:
    """Ready: a model is loaded and can answer /predict ("degraded" says what is missing)."""
    if holder.current is None:
        # The reason (storage URIs, local paths) is in the server log, not shown to the public.
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            "The model is not loaded yet; the server log says why.",
        )
    stand_in: StandIn | None = getattr(request.app.state, "stand_in", None)
    if stand_in is not None and stand_in.classifier is holder.current:
        return StatusPublic(status="degraded", detail=stand_in.reason)
    return StatusPublic(status="ok")


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST: {}}, "description": "Prometheus text"}},
)
async def prometheus_metrics() -> Response:
    """Prometheus metrics: requests, latency, verdicts, species, confidence."""
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)
