"""GET /healthz, GET /readyz and GET /metrics."""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request, Response, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from prometheus_client import CONTENT_TYPE_LATEST

from mushroom_api.deps import ModelHolderDep, PredictionLogDep, SettingsDep
from mushroom_api.schemas import ErrorPublic, StatusPublic
from mushroom_api.services.metrics import MetricsPage

router = APIRouter(tags=["health"])
optional_bearer = HTTPBearer(
    auto_error=False, description="API_ADMIN_TOKEN: adds the per-species counts to /metrics"
)


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
    responses={
        200: {"content": {CONTENT_TYPE_LATEST: {}}, "description": "Prometheus text"},
        403: {"model": ErrorPublic, "description": "A token that is not the admin token"},
    },
)
async def prometheus_metrics(
    request: Request,
    settings: SettingsDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(optional_bearer)],
) -> Response:
    """Prometheus metrics: requests, latency, verdicts, confidence; with the admin token also
    the counts per species."""
    private = False
    if credentials is not None:
        if not settings.admin_enabled or not secrets.compare_digest(
            credentials.credentials.encode(), settings.admin_token.encode()
        ):
            raise HTTPException(status.HTTP_403_FORBIDDEN, "The admin token is not valid.")
        private = True
    page: MetricsPage = request.app.state.metrics_page
    return Response(await page.render(private=private), media_type=CONTENT_TYPE_LATEST)
