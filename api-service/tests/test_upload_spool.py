"""Uploads over Starlette's 1 MB spool stay in memory: no temporary file per request."""

from __future__ import annotations

import io
import tempfile
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image


def _noisy_jpeg(min_bytes: int) -> bytes:
    pixels = np.random.default_rng(7).integers(0, 256, size=(1100, 1100, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=95)
    data = buffer.getvalue()
    assert len(data) > min_bytes
    return data


def test_an_upload_over_1_mb_is_answered_without_a_temporary_file(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = _noisy_jpeg(min_bytes=1_200_000)
    opened: list[Any] = []
    real = tempfile.TemporaryFile

    def counting(*args: Any, **kwargs: Any) -> Any:
        opened.append(args)
        return real(*args, **kwargs)

    # SpooledTemporaryFile rolls over to tempfile.TemporaryFile when it passes its max size.
    monkeypatch.setattr(tempfile, "TemporaryFile", counting)
    response = client.post("/predict", files={"file": ("p.jpg", data, "image/jpeg")})
    assert response.status_code == 200, response.text
    assert opened == []
