"""Two API processes with separate local storage and one PostgreSQL: a prediction answered by
one takes feedback on the other, and the collector and the drift monitor read it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from mushroom_api_process import ApiProcess, random_photo, start_api

from mushroom_common.storage import open_storage
from mushroom_common.store import PredictionStore
from mushroom_pipeline.drift import Reference

pytestmark = pytest.mark.slow


@pytest.fixture
def replicas(tmp_path: Path, postgres_url: str) -> Iterator[tuple[ApiProcess, ApiProcess, str]]:
    first = start_api(tmp_path, "replica-a", postgres_url)
    try:
        second = start_api(tmp_path, "replica-b", postgres_url)
    except BaseException:
        first.stop()
        raise
    try:
        yield first, second, postgres_url
    finally:
        first.stop()
        second.stop()


def _cli(
    module: str, *args: str, storage: Path, database_url: str
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MUSHROOM_", "PIPELINE_"))}
    env["MUSHROOM_DATABASE_URL"] = database_url
    env["MUSHROOM_STORAGE_URI"] = str(storage)
    return subprocess.run(
        [sys.executable, "-c", f"from {module} import app; app()", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_feedback_on_another_replica_reaches_the_collector_and_drift(
    replicas: tuple[ApiProcess, ApiProcess, str], tmp_path: Path
) -> None:
    first, second, url = replicas
    assert first.wait_until(ready=True).status_code == 200, first.log
    assert second.wait_until(ready=True).status_code == 200, second.log
    photo = random_photo(1)
    answer = first.predict(photo)
    assert answer.status_code == 200, answer.text
    request_id = answer.json()["request_id"]
    for n in range(2, 6):
        assert second.predict(random_photo(n)).status_code == 200

    # The first replica's writer logs it within its batch delay; the second finds it there.
    feedback = httpx.post(
        f"{second.url}/feedback",
        json={"request_id": request_id, "correct": True, "share_photo": True},
        headers={"Idempotency-Key": "tap-1"},
        timeout=30,
    )
    for _ in range(50):
        if feedback.status_code != 404:
            break
        feedback = httpx.post(
            f"{second.url}/feedback",
            json={"request_id": request_id, "correct": True, "share_photo": True},
            headers={"Idempotency-Key": "tap-1"},
            timeout=30,
        )
    assert feedback.status_code == 201, feedback.text
    replay = httpx.post(
        f"{first.url}/feedback",
        json={"request_id": request_id, "correct": True, "share_photo": True},
        headers={"Idempotency-Key": "tap-1"},
        timeout=30,
    )
    assert replay.status_code == 200, "a replay on the other replica adds nothing"
    assert replay.json()["id"] == feedback.json()["id"]
    shared = httpx.post(
        f"{second.url}/feedback/{feedback.json()['id']}/photo",
        files={"file": ("p.jpg", photo, "image/jpeg")},
        timeout=30,
    )
    assert shared.status_code == 200, shared.text

    store = PredictionStore(url)
    assert store.count_predictions() == 5
    assert len(store.feedback()) == 1
    store.close()

    storage_b = tmp_path / "replica-b" / "storage"
    imported = _cli(
        "mushroom_collector.cli", "import-feedback", "--quiet", storage=storage_b, database_url=url
    )
    assert imported.returncode == 0, imported.stderr
    assert "imported 1," in imported.stdout
    records = list((storage_b / "collected" / "feedback").glob("*.json"))
    assert len(records) == 1
    assert json.loads(records[0].read_text())["needs_review"] is True

    # The demo bundle is not in this storage's registry: give monitor-drift its reference (what
    # the pipeline computes from the test split) and name the bundle the answers came from.
    model = answer.json()["model"]
    reference = Reference(
        model_name=model["name"],
        model_version=model["version"],
        dataset_version="ds-test",
        source="tflite_test_split",
        confidences=[0.5 + i / 400 for i in range(200)],
        mushroom_scores=[0.5 + i / 400 for i in range(200)],
        detector_threshold=0.3,
    )
    key = f"monitoring/reference/{model['name']}/{model['version']}.json"
    open_storage(str(storage_b)).write_text(key, reference.model_dump_json())
    drift = _cli(
        "mushroom_pipeline.cli",
        "monitor-drift",
        "--window",
        "day",
        "--model-name",
        model["name"],
        "--model-version",
        model["version"],
        storage=storage_b,
        database_url=url,
    )
    assert drift.returncode == 0, drift.stderr
    day = datetime.now(UTC).strftime("%Y-%m-%d")
    assert f"| {day} 00:00 | 5 |" in drift.stdout, drift.stdout
