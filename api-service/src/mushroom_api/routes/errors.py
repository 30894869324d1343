"""Documented error responses shared by routes."""

from __future__ import annotations

from typing import Any

from mushroom_api.schemas import ErrorPublic

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
