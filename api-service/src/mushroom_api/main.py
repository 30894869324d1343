"""The FastAPI app: lifespan loads the model; routes -> services -> model."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi_offline import FastAPIOffline
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.formparsers import MultiPartParser

from mushroom_api import __version__
from mushroom_api.config import Settings, get_settings
from mushroom_api.middleware import (
    MULTIPART_SLACK_BYTES,
    ApiCorsMiddleware,
    RateLimitMiddleware,
    UploadLimitMiddleware,
)
from mushroom_api.routes import feedback, health, identify, model, species
from mushroom_api.routes.frontend import frontend_router, is_api_path
from mushroom_api.services.metrics import MetricsMiddleware
from mushroom_api.services.model_store import ModelHolder, NoModelError
from mushroom_common.catalog import load_catalog
from mushroom_common.feedback import DEFAULT_DB_NAME, FeedbackStore
from mushroom_common.registry import ModelRegistry
from mushroom_common.storage import Storage, StorageError, open_storage

logger = logging.getLogger(__name__)

RATE_LIMITED_PREFIXES = ("/predict", "/explain", "/feedback")


def feedback_db_path(settings: Settings, storage: Storage) -> Path:
    """The SQLite file: the setting, else under the local storage root, else the user cache."""
    if settings.feedback_db_path is not None:
        return settings.feedback_db_path
    local = storage.local_path(DEFAULT_DB_NAME)
    if local is not None:
        return local
    fallback = Path.home() / ".cache" / "mushroom-api" / "feedback.sqlite3"
    logger.warning(
        "storage %s is not local and API_FEEDBACK_DB_PATH is unset: feedback goes to %s",
        storage.uri,
        fallback,
    )
    return fallback


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Open storage and the feedback store, load the model, start the optional watcher."""
    settings: Settings = app.state.settings
    storage = open_storage(settings.storage_uri)
    holder = ModelHolder(settings, ModelRegistry(storage), load_catalog())
    store = FeedbackStore(feedback_db_path(settings, storage))
    app.state.storage = storage
    app.state.model_holder = holder
    app.state.feedback_store = store
    try:
        await asyncio.to_thread(holder.reload)
    except NoModelError as exc:
        logger.error("no model is served yet: %s", exc)
    watcher = (
        asyncio.create_task(holder.watch(settings.reload_poll_seconds))
        if settings.reload_poll_seconds > 0
        else None
    )
    try:
        yield
    finally:
        if watcher is not None:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
        store.close()


def _sentence(exc: RequestValidationError) -> str:
    """The first validation error as one sentence."""
    errors = exc.errors()
    if not errors:
        return "The request is not valid."
    first = errors[0]
    where = " ".join(str(part) for part in first.get("loc", ()) if part not in ("body", "query"))
    message = str(first.get("msg", "is not valid")).rstrip(".")
    if first.get("type") == "missing":
        return f"The request is missing {where or 'a required field'}."
    return f"The request's {where or 'input'} is not valid: {message}."


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(StarletteHTTPException)
    async def http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail = exc.detail if isinstance(exc.detail, str) else "The request failed."
        if exc.status_code == 404 and detail == "Not Found":
            detail = "There is nothing at this address."
        elif exc.status_code == 405:
            detail = "This address does not take this kind of request."
        return JSONResponse({"detail": detail}, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"detail": _sentence(exc)}, status_code=422)

    @app.exception_handler(StorageError)
    @app.exception_handler(sqlite3.Error)
    async def storage_error(request: Request, exc: Exception) -> JSONResponse:
        logger.error("storage failed on %s %s: %s", request.method, request.url.path, exc)
        return JSONResponse(
            {"detail": "Storage is unavailable right now; please try again later."},
            status_code=503,
        )

    @app.exception_handler(Exception)
    async def unexpected_error(request: Request, exc: Exception) -> JSONResponse:
        logger.exception("unexpected error on %s %s", request.method, request.url.path)
        return JSONResponse(
            {"detail": "Something went wrong on our side; please try again."}, status_code=500
        )


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the app (cheap: the model loads in the lifespan)."""
    settings = settings or get_settings()
    # Swagger UI and ReDoc from files shipped in fastapi-offline: /docs works without a CDN.
    app = FastAPIOffline(
        static_url="/docs-assets",
        title="Mushroom ID API",
        version=__version__,
        description=(
            "Identifies mushrooms from photos and says, safety first, whether one could be "
            "poisonous. No app can tell whether a mushroom is safe to eat."
        ),
        lifespan=lifespan,
        generate_unique_id_function=lambda route: route.name,
    )
    app.state.settings = settings
    # Keep uploads in memory instead of spilling those over Starlette's 1 MB default to a temp
    # file (2.7 -> 0.9 ms per 1 MB upload, benchmarks/hot_path.py). Memory stays bounded: the
    # upload limit middleware cuts every body off at the same size.
    MultiPartParser.spool_max_size = max(
        MultiPartParser.spool_max_size, settings.max_upload_bytes + MULTIPART_SLACK_BYTES
    )
    for router in (identify.router, feedback.router, species.router, model.router, health.router):
        app.include_router(router)
    if settings.frontend_dir is not None and settings.frontend_dir.is_dir():
        app.include_router(frontend_router(settings.frontend_dir))
        logger.info("serving the frontend from %s", settings.frontend_dir)
    _install_error_handlers(app)
    app.add_middleware(
        UploadLimitMiddleware,
        max_body_bytes=settings.max_upload_bytes + MULTIPART_SLACK_BYTES,
        max_upload_bytes=settings.max_upload_bytes,
    )
    app.add_middleware(
        RateLimitMiddleware,
        per_minute=settings.rate_limit_per_minute,
        is_limited=lambda path: path.startswith(RATE_LIMITED_PREFIXES),
    )
    app.add_middleware(
        ApiCorsMiddleware,
        is_api_path=is_api_path,
        allow_origins=settings.cors_origins,
        allow_methods=["GET", "POST"],
        allow_headers=["Authorization", "Content-Type"],
    )
    app.add_middleware(MetricsMiddleware)
    return app
