"""GET /model and POST /admin/reload."""

from __future__ import annotations

import asyncio
import secrets
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path, status
from fastapi.responses import FileResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from mushroom_api.deps import CatalogDep, ClassifierDep, ModelHolderDep, SettingsDep
from mushroom_api.schemas import ErrorPublic, ModelInfoPublic
from mushroom_api.services.identify import verdict_rules
from mushroom_api.services.model_files import ModelFileDamagedError
from mushroom_api.services.model_info import model_info
from mushroom_api.services.model_store import NoModelError, ReloadRefusedError
from mushroom_api.services.phone_rules import model_file, phone_rules
from mushroom_common.rules_export import RulesDocument

router = APIRouter(tags=["model"])
bearer = HTTPBearer(auto_error=False, description="API_ADMIN_TOKEN")


def require_admin(
    settings: SettingsDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> None:
    """Let through only requests that carry the admin token."""
    if credentials is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "This needs the admin token: send 'Authorization: Bearer <token>'.",
            headers={"WWW-Authenticate": "Bearer"},
        )
    if not settings.admin_enabled or not secrets.compare_digest(
        credentials.credentials.encode(), settings.admin_token.encode()
    ):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "The admin token is not valid.")


@router.get("/model", responses={503: {"model": ErrorPublic, "description": "Model not loaded"}})
def get_model(classifier: ClassifierDep, holder: ModelHolderDep) -> ModelInfoPublic:
    """Metadata and test metrics of the model that answers /predict, and where it came from."""
    return model_info(classifier, holder)


@router.get(
    "/model/rules",
    responses={503: {"model": ErrorPublic, "description": "Model not loaded"}},
)
def get_model_rules(
    classifier: ClassifierDep, catalog: CatalogDep, settings: SettingsDep
) -> RulesDocument:
    """What a phone needs to identify offline: the model file, labels, rules and catalog facts."""
    return phone_rules(classifier, catalog, verdict_rules(settings, classifier))


@router.get(
    "/model/file/{sha256}",
    response_class=FileResponse,
    responses={
        200: {"content": {"application/octet-stream": {}}, "description": "The TFLite model"},
        404: {"model": ErrorPublic, "description": "Not the model served now"},
        503: {"model": ErrorPublic, "description": "Model not loaded"},
    },
)
def get_model_file(
    classifier: ClassifierDep,
    sha256: Annotated[str, Path(pattern="^[0-9a-f]{64}$", description="from GET /model/rules")],
) -> FileResponse:
    """The served model's TFLite file; its sha256 in the address makes it cacheable for good."""
    try:
        path = model_file(classifier, sha256)
    except ModelFileDamagedError as exc:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            "The model file on this server is damaged; an admin reload repairs it.",
            headers={"Retry-After": "30"},
        ) from exc
    if path is None:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND,
            "This model is no longer served; GET /model/rules names the current one.",
        )
    return FileResponse(
        path,
        media_type="application/octet-stream",
        headers={"Cache-Control": "public, max-age=31536000, immutable"},
    )


@router.post(
    "/admin/reload",
    dependencies=[Depends(require_admin)],
    responses={
        401: {"model": ErrorPublic, "description": "No token"},
        403: {"model": ErrorPublic, "description": "Wrong token"},
        503: {"model": ErrorPublic, "description": "The new model could not be loaded"},
    },
)
async def reload_model(holder: ModelHolderDep) -> ModelInfoPublic:
    """Load the registry's current champion fully, then swap it in without dropping requests."""
    try:
        classifier = await asyncio.to_thread(holder.reload)
    except (ReloadRefusedError, NoModelError) as exc:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            f"The new model could not be loaded, so the old one stays. {exc}",
            headers={"Retry-After": "30"},
        ) from exc
    return model_info(classifier, holder)
