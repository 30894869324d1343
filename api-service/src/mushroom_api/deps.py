"""Dependencies injected into routes: settings, the served classifier, catalog, stores.

Every one is `async def`: they only read what the lifespan put on `app.state`, and FastAPI runs a
plain `def` dependency in its thread pool, a thread hop each: /predict's six dependencies were six
hops per request, before its one hop for decoding (benchmarks/RESULTS.md).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Request, status

from mushroom_api.config import Settings
from mushroom_api.services.classifier import Classifier
from mushroom_api.services.explain import ExplainerPool
from mushroom_api.services.model_store import ModelHolder
from mushroom_api.services.prediction_log import PredictionLog
from mushroom_common.catalog import Catalog, load_catalog
from mushroom_common.storage import Storage
from mushroom_common.store import PredictionStore


async def get_app_settings(request: Request) -> Settings:
    """The settings the app was created with."""
    settings: Settings = request.app.state.settings
    return settings


async def get_model_holder(request: Request) -> ModelHolder:
    """The holder of the served classifier (for reloads)."""
    holder: ModelHolder = request.app.state.model_holder
    return holder


async def get_classifier(holder: Annotated[ModelHolder, Depends(get_model_holder)]) -> Classifier:
    """The classifier served right now; the request keeps this one even if a reload swaps it."""
    classifier = holder.current
    if classifier is None:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            "The identification model is not loaded yet; please try again in a minute.",
        )
    return classifier


async def single_file_part(request: Request) -> None:
    """Refuse a form with several `file` parts: which one was meant cannot be known."""
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        return
    form = await request.form()  # parsed once already for the route; Starlette caches it
    if len(form.getlist("file")) > 1:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            "The form has more than one file part; send one photo per request.",
        )


async def photo_parts(request: Request) -> None:
    """Refuse a /predict form with more `file` parts than one observation takes."""
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        return
    settings: Settings = request.app.state.settings
    form = await request.form()  # parsed once already for the route; Starlette caches it
    count = len(form.getlist("file"))
    if count > settings.max_photos:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            f"The form has {count} photos; send 1 to {settings.max_photos} photos of one "
            "mushroom per request.",
        )


async def get_explainers(request: Request) -> ExplainerPool:
    """The interpreters that only /explain uses."""
    explainers: ExplainerPool = request.app.state.explainers
    return explainers


async def get_catalog() -> Catalog:
    """The species catalog."""
    return load_catalog()


async def get_prediction_store(request: Request) -> PredictionStore:
    """The prediction and feedback database."""
    store: PredictionStore = request.app.state.prediction_store
    return store


async def get_prediction_log(request: Request) -> PredictionLog:
    """The queue that logs predictions off the request path."""
    log: PredictionLog = request.app.state.prediction_log
    return log


async def get_storage(request: Request) -> Storage:
    """The storage root (models, shared feedback photos)."""
    storage: Storage = request.app.state.storage
    return storage


SettingsDep = Annotated[Settings, Depends(get_app_settings)]
ModelHolderDep = Annotated[ModelHolder, Depends(get_model_holder)]
ClassifierDep = Annotated[Classifier, Depends(get_classifier)]
CatalogDep = Annotated[Catalog, Depends(get_catalog)]
PredictionStoreDep = Annotated[PredictionStore, Depends(get_prediction_store)]
PredictionLogDep = Annotated[PredictionLog, Depends(get_prediction_log)]
StorageDep = Annotated[Storage, Depends(get_storage)]
ExplainersDep = Annotated[ExplainerPool, Depends(get_explainers)]
