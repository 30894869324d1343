"""Issue 25 items 8 and 11: both databases take the same feedback, and the small input defects.

- NUL and lone surrogates in a feedback's text: 422 on SQLite and on PostgreSQL alike (before:
  201 on SQLite, 503 and an ERROR log line on PostgreSQL, at an attacker's will).
- `"correct": "yes"` is not a boolean (before: taken as true).
- An upload named only with `filename*=` is a file (before: 422).
- /predict answers carry `Cache-Control: no-store`.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from mushroom_api_process import random_photo
from mushroom_faults_kit import ApiProcess, demo_server


@pytest.fixture
def server(tmp_path: Path, tiny_tflite: Path, database_url: str) -> Iterator[ApiProcess]:
    with demo_server(tmp_path, tiny_tflite, MUSHROOM_DATABASE_URL=database_url) as api:
        yield api


def _answer(client: httpx.Client) -> str:
    answer = client.post("/predict", files={"file": ("p.jpg", random_photo(8), "image/jpeg")})
    assert answer.status_code == 200, answer.text
    assert answer.headers["cache-control"] == "no-store"
    request_id: str = answer.json()["request_id"]
    return request_id


def test_text_no_database_can_store_is_422_on_both_backends(server: ApiProcess) -> None:
    with server.client() as client:
        request_id = _answer(client)
        hostile = [
            {"request_id": request_id, "correct": True, "comment": "nice\x00mushroom"},
            {"request_id": request_id[:-1] + "\x00", "correct": True},
            {"request_id": request_id, "correct": False, "species": "amanita\x00"},
        ]
        for body in hostile:
            refused = client.post("/feedback", json=body)
            assert refused.status_code == 422, (body, refused.status_code, refused.text)
            assert "NUL" in refused.json()["detail"]
        surrogate = (
            '{"request_id": "' + request_id + '", "correct": true, "comment": "a\\ud800b"}'
        ).encode()
        refused = client.post(
            "/feedback", content=surrogate, headers={"Content-Type": "application/json"}
        )
        assert refused.status_code == 422, refused.text
        stored = client.post(
            "/feedback", json={"request_id": request_id, "correct": True, "comment": "ok"}
        )
        assert stored.status_code == 201, stored.text
    assert "database failed" not in server.log()
    assert " ERROR " not in server.log()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_booleans_are_strict(server: ApiProcess) -> None:
    with server.client() as client:
        request_id = _answer(client)
        for value in ("yes", "true", 1, "1"):
            refused = client.post("/feedback", json={"request_id": request_id, "correct": value})
            assert refused.status_code == 422, (value, refused.text)
        refused = client.post(
            "/feedback", json={"request_id": request_id, "correct": True, "share_photo": "no"}
        )
        assert refused.status_code == 422


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_an_upload_named_only_with_filename_star_is_a_file(server: ApiProcess) -> None:
    boundary = "starboundary"
    body = (
        (
            f"--{boundary}\r\n"
            "Content-Disposition: form-data; name=\"file\"; filename*=UTF-8''champi%C3%B1on.jpg\r\n"
            "Content-Type: image/jpeg\r\n\r\n"
        ).encode()
        + random_photo(9)
        + f"\r\n--{boundary}--\r\n".encode()
    )
    with server.client() as client:
        answer = client.post(
            "/predict",
            content=body,
            headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
        )
    assert answer.status_code == 200, answer.text
    assert answer.headers["cache-control"] == "no-store"
