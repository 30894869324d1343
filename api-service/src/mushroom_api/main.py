"""The FastAPI app: lifespan loads the model; routes -> services -> model."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

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
    ByteBudget,
    RateLimitMiddleware,
    SafePathMiddleware,
    SecurityHeadersMiddleware,
    UploadLimitMiddleware,
    printable,
)
from mushroom_api.routes import feedback, health, identify, model, species
from mushroom_api.routes.errors import install_service_error_handlers
from mushroom_api.routes.frontend import frontend_router, is_api_path
from mushroom_api.services.explain import ExplainerPool
from mushroom_api.services.imaging import DECODE_MEMORY
from mushroom_api.services.metrics import MetricsMiddleware
from mushroom_api.services.model_store import ModelHolder, NoModelError
from mushroom_api.services.prediction_log import PredictionLog
from mushroom_api.services.storage_calls import BoundedStorage
from mushroom_common.catalog import load_catalog
from mushroom_common.registry import ModelRegistry
from mushroom_common.storage import Storage, StorageError, open_storage
from mushroom_common.store import PredictionStore, StoreError, redact, resolve_database_url

logger = logging.getLogger(__name__)

RATE_LIMITED_PREFIXES = ("/predict", "/explain", "/feedback")
STORAGE_RETRY_AFTER_S = 10


def open_prediction_log(settings: Settings, storage: Storage) -> PredictionLog:
    """Open the database (`MUSHROOM_DATABASE_URL`), migrate it, and start its writer.

    A database that is down at start does not stop the API: the writer retries the migrations,
    predictions are answered meanwhile, and /readyz says the log cannot be written.
    """
    store = PredictionStore(
        resolve_database_url(storage=storage), timeout_s=settings.store_timeout_s
    )
    schema_error = None
    try:
        store.upgrade()
    except StoreError as exc:
        schema_error = str(exc)
        logger.error("the prediction database is not usable yet (%s): answers are not logged", exc)
    log = PredictionLog(
        store,
        max_queue=settings.prediction_log_queue,
        probe_interval_s=settings.store_probe_s,
        stall_after_s=settings.store_stall_s,
        schema_ready=schema_error is None,
        schema_error=schema_error,
    )
    log.start()
    logger.info("predictions and feedback go to %s", redact(str(store.engine.url)))
    return log


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Open storage and the prediction log, load the model, start the optional watcher."""
    settings: Settings = app.state.settings
    storage = open_storage(settings.storage_uri)
    holder = ModelHolder(settings, ModelRegistry(storage), load_catalog())
    log = await asyncio.to_thread(open_prediction_log, settings, storage)
    app.state.model_holder = holder
    app.state.explainers = ExplainerPool(
        settings.explain_pool_size, settings.interpreter_threads, settings.explain_queue
    )
    app.state.prediction_store = log.store
    app.state.prediction_log = log
    # Request-path storage calls get their own bounded threads and a deadline (health routes
    # never wait on them).
    app.state.storage = BoundedStorage(
        storage, settings.storage_workers, settings.storage_timeout_s
    )
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
        await asyncio.to_thread(log.close)
        log.store.close()
        app.state.storage.close()


def _sentence(exc: RequestValidationError) -> str:
    """The first validation error as one sentence."""
    errors = exc.errors()
    if not errors:
        return "The request is not valid."
    first = errors[0]
    kind = first.get("type")
    loc = [part for part in first.get("loc", ()) if part not in ("body", "query", "path")]
    if kind == "json_invalid":
        return "The request body is not valid JSON."
    if not loc or all(isinstance(part, int) for part in loc):
        return "The request body does not have the expected fields."
    where = " ".join(str(part) for part in loc)
    if kind == "missing":
        return f"The request is missing {where}."
    if loc[0] == "file":
        return "The request's file must be a photo sent as a file (multipart/form-data)."
    message = str(first.get("msg", "is not valid")).rstrip(".")
    return f"The request's {where} is not valid: {message}."


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(StarletteHTTPException)
    async def http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail = exc.detail if isinstance(exc.detail, str) else "The request failed."
        if exc.status_code == 404 and detail == "Not Found":
            detail = "There is nothing at this address."
        elif exc.status_code == 405:
            detail = "This address does not take this kind of request."
        elif exc.status_code == 400 and detail == "There was an error parsing the body":
            detail = "The request body could not be read as a form."
        return JSONResponse({"detail": detail}, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"detail": _sentence(exc)}, status_code=422)

    install_service_error_handlers(app)

    @app.exception_handler(StoreError)
    async def store_error(request: Request, exc: Exception) -> JSONResponse:
        # Only feedback reads and writes the database on the request path (predictions are
        # queued), so the sentence can say what did not happen.
        logger.error(
            "database failed on %s %s: %s", request.method, printable(request.url.path), exc
        )
        return JSONResponse(
            {"detail": "Feedback cannot be stored right now; please try again later."},
            status_code=503,
            headers={"Retry-After": str(STORAGE_RETRY_AFTER_S)},
        )

    @app.exception_handler(StorageError)
    async def storage_error(request: Request, exc: Exception) -> JSONResponse:
        logger.error(
            "storage failed on %s %s: %s", request.method, printable(request.url.path), exc
        )
        return JSONResponse(
            {"detail": "Storage is unavailable right now; please try again later."},
            status_code=503,
            headers={"Retry-After": str(STORAGE_RETRY_AFTER_S)},
        )

    @app.exception_handler(Exception)
    async def unexpected_error(request: Request, exc: Exception) -> JSONResponse:
        logger.exception("unexpected error on %s %s", request.method, printable(request.url.path))
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
    for router in (identify.router, feedback.router, species.router, model.router, health.router):
        app.include_router(router)
    if settings.frontend_dir is not None and settings.frontend_dir.is_dir():
        app.include_router(frontend_router(settings.frontend_dir))
        logger.info("serving the frontend from %s", settings.frontend_dir)
    _install_error_handlers(app)
    # Uploads stay in memory up to the limit instead of spilling those over Starlette's 1 MB
    # default to /tmp, which is small in the cluster (and 2.7 -> 0.6 ms per 1 MB upload,
    # benchmarks/hot_path.py). Memory stays bounded: the upload limit middleware cuts every body
    # off at this size, and the upload budget bounds what all of them hold together.
    DECODE_MEMORY.resize(settings.decode_total_bytes)
    MultiPartParser.spool_max_size = settings.max_upload_bytes + MULTIPART_SLACK_BYTES
    app.state.upload_budget = ByteBudget(settings.upload_budget_bytes)
    app.add_middleware(
        UploadLimitMiddleware,
        max_body_bytes=settings.max_upload_bytes + MULTIPART_SLACK_BYTES,
        max_upload_bytes=settings.max_upload_bytes,
        budget=app.state.upload_budget,
        observation_paths=frozenset({"/predict"}),
        max_observation_bytes=settings.max_observation_bytes,
    )
    app.add_middleware(
        RateLimitMiddleware,
        per_minute=settings.rate_limit_per_minute,
        is_limited=lambda path: path.startswith(RATE_LIMITED_PREFIXES),
        max_clients=settings.rate_limit_clients,
    )
    app.add_middleware(
        ApiCorsMiddleware,
        is_api_path=is_api_path,
        allow_origins=settings.cors_origins,
        allow_methods=["GET", "POST"],
        allow_headers=["Authorization", "Content-Type"],
    )
    app.add_middleware(SafePathMiddleware)
    app.add_middleware(MetricsMiddleware)
    app.add_middleware(SecurityHeadersMiddleware)
    return app
