"""HTTP stays in routes: services take bytes and raise domain errors; routes map them."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from mushroom_api.routes.errors import SERVICE_ERROR_STATUS, status_for
from mushroom_api.services import errors
from mushroom_api.services.imaging import TooManyPixelsError, UnsupportedImageError

SERVICES = Path(__file__).resolve().parents[1] / "src" / "mushroom_api" / "services"
HTTP_NAMES = {"HTTPException", "UploadFile", "Request", "Response", "status"}


@pytest.mark.parametrize("path", sorted(SERVICES.glob("*.py")), ids=lambda p: p.name)
def test_services_import_nothing_from_fastapi(path: Path) -> None:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            assert not node.module.startswith("fastapi"), f"{path.name} imports {node.module}"
            if node.module.startswith("starlette"):
                names = {alias.name for alias in node.names}
                assert not names & HTTP_NAMES, f"{path.name} imports {names & HTTP_NAMES}"
        if isinstance(node, ast.Import):
            assert not [a for a in node.names if a.name.startswith("fastapi")], path.name


def test_every_domain_error_has_a_status() -> None:
    domain = [
        value
        for value in vars(errors).values()
        if isinstance(value, type) and issubclass(value, errors.ServiceError)
    ]
    assert set(domain) - {errors.ServiceError} <= set(SERVICE_ERROR_STATUS)
    assert status_for(errors.FeedbackWindowClosedError("old")) == 410
    assert status_for(UnsupportedImageError("no")) == 415
    assert status_for(TooManyPixelsError("big")) == 422, "a subclass takes its base's status"
