"""Documented error responses shared by routes, and the map from domain errors to statuses."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request, status
from fastapi.responses import JSONResponse

from mushroom_api.schemas import ErrorPublic
from mushroom_api.services.errors import (
    FeedbackWindowClosedError,
    IdempotencyKeyReusedError,
    InvalidInputError,
    ModelUnavailableError,
    NotFoundError,
    NotPermittedError,
    ServiceError,
)
from mushroom_api.services.explain import ExplainerBusyError
from mushroom_api.services.imaging import (
    DecodeAbandonedError,
    DecoderBusyError,
    ImageError,
    UnsupportedImageError,
)

IMAGE_ERRORS: dict[int | str, dict[str, Any]] = {
    413: {"model": ErrorPublic, "description": "Photo too large"},
    415: {"model": ErrorPublic, "description": "Not a supported image"},
    422: {"model": ErrorPublic, "description": "Undecodable photo, too many pixels or bad query"},
    429: {"model": ErrorPublic, "description": "Too many requests"},
    503: {"model": ErrorPublic, "description": "Model not loaded"},
}
NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorPublic, "description": "Not found"},
}


# Domain errors of the services and the HTTP status each one becomes.
SERVICE_ERROR_STATUS: dict[type[Exception], int] = {
    NotFoundError: status.HTTP_404_NOT_FOUND,
    InvalidInputError: status.HTTP_422_UNPROCESSABLE_CONTENT,
    NotPermittedError: status.HTTP_403_FORBIDDEN,
    FeedbackWindowClosedError: status.HTTP_410_GONE,
    IdempotencyKeyReusedError: status.HTTP_422_UNPROCESSABLE_CONTENT,
    ModelUnavailableError: status.HTTP_503_SERVICE_UNAVAILABLE,
    ExplainerBusyError: status.HTTP_503_SERVICE_UNAVAILABLE,
    UnsupportedImageError: status.HTTP_415_UNSUPPORTED_MEDIA_TYPE,
    DecoderBusyError: status.HTTP_503_SERVICE_UNAVAILABLE,
    DecodeAbandonedError: status.HTTP_503_SERVICE_UNAVAILABLE,
    ImageError: status.HTTP_422_UNPROCESSABLE_CONTENT,
}


def status_for(exc: Exception) -> int:
    """The status of a domain error: its own class's, else its nearest base class's."""
    for cls in type(exc).__mro__:
        if cls in SERVICE_ERROR_STATUS:
            return SERVICE_ERROR_STATUS[cls]
    return status.HTTP_500_INTERNAL_SERVER_ERROR


def install_service_error_handlers(app: FastAPI) -> None:
    """Answer every domain error with its status and its sentence."""

    async def service_error(_request: Request, exc: Exception) -> JSONResponse:
        # Errors that pass (a busy decoder, a full explanation queue) say when to retry.
        retry_after = getattr(exc, "retry_after_s", None)
        headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
        return JSONResponse({"detail": str(exc)}, status_code=status_for(exc), headers=headers)

    app.add_exception_handler(ServiceError, service_error)
