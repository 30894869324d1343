"""POST /predict and POST /explain."""

from __future__ import annotations

from typing import Annotated

from fastapi import (
    APIRouter,
    Depends,
    File,
    Form,
    HTTPException,
    Query,
    Response,
    UploadFile,
    status,
)

from mushroom_api.deps import (
    CatalogDep,
    ClassifierDep,
    ExplainersDep,
    PredictionLogDep,
    SettingsDep,
    photo_parts,
    single_file_part,
)
from mushroom_api.routes.errors import IMAGE_ERRORS
from mushroom_api.routes.uploads import read_upload
from mushroom_api.schemas import ErrorPublic, IdentificationPublic
from mushroom_api.services import identify as service
from mushroom_common.observation import PHOTO_VIEWS

router = APIRouter(tags=["identify"])


@router.post("/predict", responses=IMAGE_ERRORS, dependencies=[Depends(photo_parts)])
async def predict(
    file: Annotated[
        list[UploadFile],
        File(
            description="1 to 5 photos of ONE mushroom (cap, underside, stem base...): JPEG, "
            "PNG, WebP or HEIC/HEIF; repeat the field for each photo"
        ),
    ],
    classifier: ClassifierDep,
    catalog: CatalogDep,
    settings: SettingsDep,
    log: PredictionLogDep,
    top_k: Annotated[int, Query(ge=1, le=10, description="how many species to return")] = 3,
    view: Annotated[
        list[str] | None,
        Form(
            description="what each photo shows, one per file in the same order: "
            f"{', '.join(PHOTO_VIEWS)}, or empty when not said"
        ),
    ] = None,
    lat: Annotated[
        float | None,
        Form(ge=-90, le=90, description="latitude; the server rounds it to 1 degree first"),
    ] = None,
    lon: Annotated[
        float | None,
        Form(ge=-180, le=180, description="longitude; the server rounds it to 1 degree first"),
    ] = None,
    month: Annotated[
        int | None, Form(ge=1, le=12, description="the month the mushroom was found (1-12)")
    ] = None,
) -> IdentificationPublic:
    """Identify the mushroom in one to five photos of it, and say, safety first, whether it
    could be poisonous; a location and month, when given, re-weight the answer softly."""
    photos: list[bytes] = []
    total = 0
    for upload in file:
        data = await read_upload(upload, settings.max_upload_bytes)
        total += len(data)
        if total > settings.max_observation_bytes:
            raise HTTPException(
                status.HTTP_413_CONTENT_TOO_LARGE,
                "The photos are too large together: the limit is "
                f"{settings.max_observation_bytes / (1024 * 1024):.0f} MB per request.",
            )
        photos.append(data)
    place = service.Place(lat=lat, lon=lon, month=month, views=view)
    logged = log if settings.log_predictions else None
    return await service.identify(photos, place, top_k, classifier, catalog, settings, logged)


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
