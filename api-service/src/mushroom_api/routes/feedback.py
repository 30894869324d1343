"""POST /feedback and POST /feedback/{feedback_id}/photo."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, File, UploadFile, status

from mushroom_api.deps import (
    CatalogDep,
    FeedbackStoreDep,
    SettingsDep,
    StorageDep,
    single_file_part,
)
from mushroom_api.routes.errors import IMAGE_ERRORS, NOT_FOUND
from mushroom_api.schemas import ErrorPublic, FeedbackCreate, FeedbackPublic
from mushroom_api.services import feedback as service

router = APIRouter(prefix="/feedback", tags=["feedback"])


@router.post("", status_code=status.HTTP_201_CREATED, responses=NOT_FOUND)
async def create_feedback(
    body: FeedbackCreate, store: FeedbackStoreDep, catalog: CatalogDep
) -> FeedbackPublic:
    """Say whether an answer was right, and which species it really was if you know."""
    return await service.create_feedback(body, store, catalog)


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
    store: FeedbackStoreDep,
    storage: StorageDep,
    settings: SettingsDep,
) -> FeedbackPublic:
    """Share the identified photo for retraining (only after agreeing to in the feedback)."""
    return await service.store_feedback_photo(feedback_id, file, store, storage, settings)
