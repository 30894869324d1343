"""POST /predict and POST /explain."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, File, Query, Response, UploadFile

from mushroom_api.deps import (
    CatalogDep,
    ClassifierDep,
    ExplainersDep,
    PredictionLogDep,
    SettingsDep,
    single_file_part,
)
from mushroom_api.routes.errors import IMAGE_ERRORS
from mushroom_api.routes.uploads import read_upload
from mushroom_api.schemas import ErrorPublic, IdentificationPublic
from mushroom_api.services import identify as service

router = APIRouter(tags=["identify"])


@router.post("/predict", responses=IMAGE_ERRORS, dependencies=[Depends(single_file_part)])
async def predict(
    file: Annotated[UploadFile, File(description="a JPEG, PNG, WebP or HEIC/HEIF photo")],
    classifier: ClassifierDep,
    catalog: CatalogDep,
    settings: SettingsDep,
    log: PredictionLogDep,
    top_k: Annotated[int, Query(ge=1, le=10, description="how many species to return")] = 3,
) -> IdentificationPublic:
    """Identify the mushroom in a photo and say, safety first, whether it could be poisonous."""
    data = await read_upload(file, settings.max_upload_bytes)
    logged = log if settings.log_predictions else None
    return await service.identify(data, top_k, classifier, catalog, settings, logged)


@router.post(
    "/explain",
    response_class=Response,
    dependencies=[Depends(single_file_part)],
    responses={
        200: {"content": {"image/png": {}}, "description": "heat map over the model-sized photo"},
        **IMAGE_ERRORS,
        404: {"model": ErrorPublic, "description": "Unknown species, or one the model cannot tell"},
    },
)
async def explain(
    file: Annotated[UploadFile, File(description="a JPEG, PNG, WebP or HEIC/HEIF photo")],
    classifier: ClassifierDep,
    catalog: CatalogDep,
    settings: SettingsDep,
    explainers: ExplainersDep,
    species: Annotated[
        str | None,
        Query(max_length=100, description="catalog id to explain; the top prediction by default"),
    ] = None,
) -> Response:
    """Show, as a PNG heat map, which parts of the photo the model relied on (occlusion)."""
    data = await read_upload(file, settings.max_upload_bytes)
    png = await service.explain(data, species, classifier, catalog, settings, explainers)
    return Response(content=png, media_type="image/png")
