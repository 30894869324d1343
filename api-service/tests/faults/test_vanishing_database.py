"""Issue 25 item 6: the SQLite file deleted or replaced under a running server.

Before the fix feedback answered 201 and /readyz stayed ok while rows went into the deleted
inode; now readiness fails and feedback is refused with a 503 that says why.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from mushroom_api_process import random_photo
from mushroom_faults_kit import ApiProcess, demo_server


@pytest.fixture
def server(tmp_path: Path, tiny_tflite: Path) -> Iterator[ApiProcess]:
    database = tmp_path / "storage" / "db" / "mushroom.sqlite3"
    with demo_server(
        tmp_path,
        tiny_tflite,
        MUSHROOM_DATABASE_URL=f"sqlite:///{database}",
        API_STORE_PROBE_S="0.5",
    ) as api:
        yield api


@pytest.mark.parametrize("fault", ["folder_deleted", "file_replaced"])
def test_a_vanished_database_is_noticed_not_written_into(server: ApiProcess, fault: str) -> None:
    folder = server.root / "storage" / "db"
    with server.client() as client:
        answer = client.post("/predict", files={"file": ("p.jpg", random_photo(4), "image/jpeg")})
        request_id = answer.json()["request_id"]
        first = client.post("/feedback", json={"request_id": request_id, "correct": True})
        assert first.status_code == 201, first.text
        assert client.get("/readyz").status_code == 200
        if fault == "folder_deleted":
            shutil.rmtree(folder)
        else:
            database = folder / "mushroom.sqlite3"
            copy = folder / "copy.sqlite3"
            shutil.copyfile(database, copy)
            copy.replace(database)
        feedback = client.post("/feedback", json={"request_id": request_id, "correct": False})
        assert feedback.status_code == 503, (feedback.status_code, feedback.text)
        assert "deleted or replaced" in feedback.json()["detail"]
        deadline = time.monotonic() + 5
        ready = client.get("/readyz")
        while ready.status_code != 503 and time.monotonic() < deadline:
            time.sleep(0.2)
            ready = client.get("/readyz")
        assert ready.status_code == 503, ready.text
        assert "deleted or replaced" in ready.json()["detail"]
        # Answers go on: a lost log line is counted, never a failed prediction.
        again = client.post("/predict", files={"file": ("p.jpg", random_photo(5), "image/jpeg")})
        assert again.status_code == 200
