"""Champion loading and shared feedback photos through a real GCS emulator (gs:// storage)."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from mushroom_api_testkit import (
    RED,
    BundleFactory,
    PhotoFactory,
    assert_same_pixels_without_metadata,
    publish_champion,
)

from mushroom_api.config import Settings
from mushroom_api.main import create_app
from mushroom_common.storage import open_storage


def test_champion_and_feedback_photo_on_gcs(
    gcs_emulator: tuple[Any, str],
    settings: Settings,
    tmp_path: Path,
    bundle_factory: BundleFactory,
    photo: PhotoFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _emulator, uri = gcs_emulator
    storage = open_storage(uri)
    bundle = tmp_path / "build" / "v9"
    metadata = bundle_factory(bundle, version="v9")
    publish_champion(storage, bundle, metadata)

    # Remote storage has no local folder for the default SQLite file: name the database.
    monkeypatch.setenv("MUSHROOM_DATABASE_URL", f"sqlite:///{tmp_path / 'mushroom.sqlite3'}")
    on_gcs = settings.model_copy(update={"storage_uri": uri})
    with TestClient(create_app(on_gcs)) as client:
        assert client.get("/model").json()["version"] == "v9"
        data = photo(RED)
        answer = client.post("/predict", files={"file": ("p.jpg", data, "image/jpeg")}).json()
        assert answer["verdict"] == "dangerous"
        feedback = client.post(
            "/feedback",
            json={"request_id": answer["request_id"], "correct": True, "share_photo": True},
        ).json()
        shared = client.post(
            f"/feedback/{feedback['id']}/photo", files={"file": ("p.jpg", data, "image/jpeg")}
        )
        assert shared.json()["photo_stored"] is True
    key = f"feedback/photos/{hashlib.sha256(data).hexdigest()}.jpg"
    assert_same_pixels_without_metadata(storage.read_bytes(key), data)
