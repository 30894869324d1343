"""POST /feedback and POST /feedback/{feedback_id}/photo."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, File, Header, Response, UploadFile, status

from mushroom_api.deps import (
    CatalogDep,
    PredictionLogDep,
    PredictionStoreDep,
    SettingsDep,
    StorageDep,
    single_file_part,
)
from mushroom_api.routes.errors import IMAGE_ERRORS, NOT_FOUND
from mushroom_api.routes.uploads import read_upload
from mushroom_api.schemas import ErrorPublic, FeedbackCreate, FeedbackPublic
from mushroom_api.services import feedback as service

router = APIRouter(prefix="/feedback", tags=["feedback"])


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    responses={
        200: {"model": FeedbackPublic, "description": "A replay: the feedback stored before"},
        **NOT_FOUND,
        410: {"model": ErrorPublic, "description": "The answer is older than the feedback window"},
        422: {"model": ErrorPublic, "description": "Unknown species, or a reused key"},
    },
)
async def create_feedback(
    body: FeedbackCreate,
    response: Response,
    store: PredictionStoreDep,
    log: PredictionLogDep,
    catalog: CatalogDep,
    settings: SettingsDep,
    idempotency_key: Annotated[
        str | None,
        Header(
            min_length=1,
            max_length=128,
            description="any unique string per feedback; a replay with it adds nothing "
            "(without one, identical feedback on the same answer counts once)",
        ),
    ] = None,
) -> FeedbackPublic:
    """Say whether an answer was right, and which species it really was if you know."""
    feedback, created = await service.create_feedback(
        body, idempotency_key, store, log, catalog, settings
    )
    if not created:
        response.status_code = status.HTTP_200_OK
    return feedback


@router.post(
    "/{feedback_id}/photo",
    dependencies=[Depends(single_file_part)],
    responses={
        **NOT_FOUND,
        403: {"model": ErrorPublic, "description": "The feedback did not agree to share the photo"},
        **{code: IMAGE_ERRORS[code] for code in (413, 415, 422)},
    },
)
async def feedback_photo(
    feedback_id: str,
    file: Annotated[UploadFile, File(description="the same photo that was identified")],
    store: PredictionStoreDep,
    storage: StorageDep,
    settings: SettingsDep,
) -> FeedbackPublic:
    """Share the identified photo for retraining (only after agreeing to in the feedback)."""
    data = await read_upload(file, settings.max_upload_bytes)
    return await service.store_feedback_photo(feedback_id, data, store, storage, settings)
