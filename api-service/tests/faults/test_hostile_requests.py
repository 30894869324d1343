"""Issue 15 item 13 (and 8's queue): small hostile requests against a real server.

Each answer is a status a client can act on and one sentence a person understands; nothing the
client sent is echoed back at length, and nothing private (paths, storage URIs) is shown.
"""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from mushroom_api_testkit import GREEN, photo_bytes
from mushroom_faults_kit import ApiProcess, api_env, demo_server, raw_png, start_api


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, tiny_tflite: Path) -> Iterator[ApiProcess]:
    with demo_server(
        tmp_path_factory.mktemp("requests"), tiny_tflite, API_EXPLAIN_QUEUE="1"
    ) as api:
        yield api


def _sentence(answer: httpx.Response) -> str:
    detail: str = answer.json()["detail"]
    assert detail[0].isupper()
    assert detail.endswith(".")
    assert "<class" not in detail
    return detail


@pytest.mark.parametrize("size", [(1, 1), (20000, 1), (63, 500)])
def test_photos_under_64_pixels_on_the_short_side_are_refused(
    server: ApiProcess, size: tuple[int, int]
) -> None:
    with server.client() as client:
        answer = client.post(
            "/predict", files={"file": ("p.png", raw_png(*size, 8, 3), "image/png")}
        )
    assert answer.status_code == 422
    assert "too small" in _sentence(answer)


def test_a_huge_species_is_not_echoed(server: ApiProcess) -> None:
    huge = "x" * (10 * 1024 * 1024)
    with server.client(timeout=60) as client:
        body = {"request_id": "abc", "correct": False, "species": huge}
        answer = client.post("/feedback", json=body)
        query = client.post(
            "/explain",
            params={"species": "y" * 4000},
            files={"file": ("p.jpg", photo_bytes(GREEN), "image/jpeg")},
        )
    assert answer.status_code == 422
    assert len(answer.content) < 1000
    assert "species" in _sentence(answer)
    assert query.status_code == 422
    assert len(query.content) < 1000


def test_validation_errors_are_sentences_for_a_person(server: ApiProcess) -> None:
    with server.client() as client:
        as_text = client.post("/predict", data={"file": "not a file"})
        bad_json = client.post(
            "/feedback", content=b"{not json", headers={"Content-Type": "application/json"}
        )
        not_an_object = client.post("/feedback", json=[1, 2])
    assert as_text.status_code == 422
    assert "must be a photo sent as a file" in _sentence(as_text)
    assert bad_json.status_code == 422
    assert _sentence(bad_json) == "The request body is not valid JSON."
    assert not_an_object.status_code == 422
    assert "1" not in _sentence(not_an_object)


def test_six_file_parts_are_refused(server: ApiProcess) -> None:
    # One observation takes 1 to 5 photos (issue 24); a sixth is refused before any decoding.
    files = [("file", (f"{i}.jpg", photo_bytes(GREEN), "image/jpeg")) for i in range(6)]
    with server.client() as client:
        answer = client.post("/predict", files=files)
    assert answer.status_code == 422
    assert "send 1 to 5 photos" in _sentence(answer)


def test_explanations_beyond_their_queue_are_refused_while_predictions_go_on(
    server: ApiProcess,
) -> None:
    data = photo_bytes(GREEN, size=(320, 240))
    statuses: list[int] = []
    retry_after: list[str] = []

    def explain() -> None:
        answer = httpx.post(
            f"{server.base_url}/explain", files={"file": ("p.jpg", data, "image/jpeg")}, timeout=60
        )
        statuses.append(answer.status_code)
        if answer.status_code == 503:
            retry_after.append(answer.headers["retry-after"])

    threads = [threading.Thread(target=explain) for _ in range(6)]
    for thread in threads:
        thread.start()
    with server.client() as client:
        predicted = [
            client.post("/predict", files={"file": ("p.jpg", data, "image/jpeg")}).status_code
            for _ in range(5)
        ]
    for thread in threads:
        thread.join()
    assert predicted == [200] * 5
    assert set(statuses) <= {200, 503}
    assert 200 in statuses
    assert all(int(value) > 0 for value in retry_after)


def test_not_ready_says_so_without_paths_or_uris(tmp_path: Path) -> None:
    env = api_env(tmp_path, tmp_path / "no-demo-here")
    api = start_api(tmp_path, env)
    try:
        with api.client() as client:
            answer = client.get("/readyz")
    finally:
        api.stop()
    assert answer.status_code == 503
    detail = _sentence(answer)
    assert str(tmp_path) not in detail
    assert "file://" not in detail
    assert str(tmp_path) in api.log()  # the operator still learns why


def test_an_unwritable_feedback_path_does_not_stop_startup(
    tmp_path: Path, tiny_tflite: Path
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with (
        demo_server(
            tmp_path,
            tiny_tflite,
            MUSHROOM_DATABASE_URL=f"sqlite:///{blocker / 'feedback.sqlite3'}",
            API_LOG_PREDICTIONS="false",
        ) as api,
        api.client() as client,
    ):
        predicted = client.post(
            "/predict", files={"file": ("p.jpg", photo_bytes(GREEN), "image/jpeg")}
        )
        feedback = client.post("/feedback", json={"request_id": "abc", "correct": True})
    assert predicted.status_code == 200
    assert feedback.status_code == 503
    assert "Feedback cannot be stored" in _sentence(feedback)


@pytest.mark.parametrize("token", ["a", "password", "password" * 5, "x" * 40])
def test_production_refuses_weak_admin_tokens(tmp_path: Path, token: str) -> None:
    env = api_env(tmp_path, tmp_path, API_ENV="production", API_ADMIN_TOKEN=token)
    result = subprocess.run(
        [sys.executable, "-m", "mushroom_api.cli", "--port", "1"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert "API_ADMIN_TOKEN" in result.stderr
    if len(token) >= 8:
        assert token not in result.stderr  # a secret, even a weak one, is never logged
