"""The prediction log off the request path, idempotent feedback and the feedback window
(the app with the tiny real model; the store is SQLite in tmp_path or an unreachable server)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

from fastapi.testclient import TestClient
from mushroom_api_testkit import PhotoFactory, free_port

from mushroom_api.config import Settings
from mushroom_api.main import create_app
from mushroom_api.services import metrics
from mushroom_api.services.prediction_log import PredictionLog
from mushroom_common.store import PredictionRecord, PredictionStore


def _predict(client: TestClient, data: bytes) -> str:
    answer = client.post("/predict", files={"file": ("p.jpg", data, "image/jpeg")})
    assert answer.status_code == 200, answer.text
    request_id: str = answer.json()["request_id"]
    return request_id


def _wait_logged(store: PredictionStore, request_id: str) -> None:
    deadline = time.monotonic() + 10
    while store.get_prediction(request_id) is None:
        assert time.monotonic() < deadline, "the writer did not log the prediction"
        time.sleep(0.02)


def _record(request_id: str, created_at: datetime | None = None) -> PredictionRecord:
    return PredictionRecord(
        request_id=request_id,
        created_at=created_at or datetime.now(UTC),
        photo_sha256="0" * 64,
        model_name="m",
        model_version="1",
        verdict="uncertain",
        top_species=None,
        top_probability=None,
        mushroom_score=None,
    )


def test_feedback_replays_add_no_rows(client: TestClient, photo: PhotoFactory) -> None:
    store: PredictionStore = client.app.state.prediction_store  # type: ignore[attr-defined]
    request_id = _predict(client, photo(size=(96, 96)))
    body = {"request_id": request_id, "correct": False, "species": "boletus_edulis"}
    first = client.post("/feedback", json=body, headers={"Idempotency-Key": "k-1"})
    assert first.status_code == 201, first.text
    replay = client.post("/feedback", json=body, headers={"Idempotency-Key": "k-1"})
    assert replay.status_code == 200
    assert replay.json() == first.json()
    second = client.post("/feedback", json=body, headers={"Idempotency-Key": "k-2"})
    assert second.status_code == 201
    assert second.json()["id"] != first.json()["id"]
    reused = client.post(
        "/feedback",
        json={**body, "correct": True, "species": None},
        headers={"Idempotency-Key": "k-1"},
    )
    assert reused.status_code == 422
    assert reused.json()["detail"].startswith("This Idempotency-Key was already used")
    # Without a key, the same feedback sent twice (a double tap, a retried request) counts once.
    plain = {"request_id": request_id, "correct": True}
    assert client.post("/feedback", json=plain).status_code == 201
    assert client.post("/feedback", json=plain).status_code == 200
    assert len(store.feedback()) == 3


def test_feedback_on_an_answer_older_than_the_window_is_refused(
    settings: Settings, photo: PhotoFactory
) -> None:
    with TestClient(create_app(settings.model_copy(update={"feedback_window_hours": 1}))) as client:
        store: PredictionStore = client.app.state.prediction_store  # type: ignore[attr-defined]
        old = _record("old-answer", datetime.now(UTC) - timedelta(hours=2))
        store.add_predictions([old])
        refused = client.post("/feedback", json={"request_id": "old-answer", "correct": True})
        assert refused.status_code == 410
        assert refused.json() == {
            "detail": "This answer is more than 1 hour old; feedback is accepted for 1 hour "
            "after an answer."
        }
        fresh = _predict(client, photo(size=(96, 96)))
        assert (
            client.post("/feedback", json={"request_id": fresh, "correct": True}).status_code == 201
        )
        assert store.feedback()[0].request_id == fresh


def test_feedback_before_the_prediction_is_written_still_works(
    client: TestClient, photo: PhotoFactory
) -> None:
    log: PredictionLog = client.app.state.prediction_log  # type: ignore[attr-defined]
    store = log.store
    log.close()  # the writer stops: the next answer stays in the queue
    request_id = _predict(client, photo(size=(96, 96)))
    assert store.get_prediction(request_id) is None
    assert log.pending(request_id) is not None
    created = client.post("/feedback", json={"request_id": request_id, "correct": True})
    assert created.status_code == 201, created.text
    assert store.get_prediction(request_id) is not None, "the feedback wrote the queued answer"


def test_answers_are_logged_and_counted(client: TestClient, photo: PhotoFactory) -> None:
    store: PredictionStore = client.app.state.prediction_store  # type: ignore[attr-defined]
    before = metrics.PREDICTION_LOG.labels(outcome="written")._value.get()
    request_id = _predict(client, photo(size=(96, 96)))
    _wait_logged(store, request_id)
    logged = store.get_prediction(request_id)
    assert logged is not None
    assert logged.model_version == "demo-1"
    assert metrics.PREDICTION_LOG.labels(outcome="written")._value.get() == before + 1
    text = client.get("/metrics").text
    assert 'mushroom_api_prediction_log_total{outcome="written"}' in text
    assert "mushroom_api_prediction_log_queue" in text
    assert client.get("/readyz").status_code == 200


def test_an_unreachable_database_drops_answers_with_a_count_and_tells_readiness(
    tmp_path: Path,
) -> None:
    store = PredictionStore(f"postgresql://nobody@127.0.0.1:{free_port()}/none", timeout_s=1)
    log = PredictionLog(
        store, max_queue=2, probe_interval_s=0.2, schema_ready=False, schema_error="down"
    )
    dropped = metrics.PREDICTION_LOG.labels(outcome="dropped_store_error")._value.get()
    full = metrics.PREDICTION_LOG.labels(outcome="dropped_queue_full")._value.get()
    log.start()
    try:
        records = [_record(f"r{i}") for i in range(6)]
        started = time.perf_counter()
        accepted = [log.submit(record) for record in records]
        assert time.perf_counter() - started < 0.05, "submitting never waits for the database"
        assert not all(accepted), "a full queue drops instead of blocking"
        health = log.health()
        assert health == "The prediction database cannot be reached or migrated yet"
        deadline = time.monotonic() + 30
        while any(log.pending(record.request_id) for record in records):
            assert time.monotonic() < deadline
            time.sleep(0.05)
        total_dropped = (
            metrics.PREDICTION_LOG.labels(outcome="dropped_store_error")._value.get() - dropped
        )
        total_full = metrics.PREDICTION_LOG.labels(outcome="dropped_queue_full")._value.get() - full
        assert total_dropped + total_full == 6
        assert total_full >= 1
    finally:
        log.close(timeout_s=5)
        store.close()


class _BatchCountingStore(PredictionStore):
    """A real SQLite store that remembers the size of every insert."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.batches: list[int] = []

    def add_predictions(self, records: Sequence[PredictionRecord]) -> int:
        self.batches.append(len(records))
        return super().add_predictions(records)


def test_records_arriving_together_are_written_in_one_insert(tmp_path: Path) -> None:
    store = _BatchCountingStore(f"sqlite:///{tmp_path / 'log.sqlite3'}")
    store.upgrade()
    log = PredictionLog(store, linger_s=0.5)
    log.start()
    try:
        for i in range(5):
            assert log.submit(_record(f"r{i}"))
            time.sleep(0.02)  # requests a few ms apart, as under load
        _wait_logged(store, "r4")
    finally:
        log.close()
    assert store.batches == [5], "one insert for the records of one linger window"
    assert all(store.get_prediction(f"r{i}") is not None for i in range(5))


def test_close_writes_what_is_queued_without_lingering(tmp_path: Path) -> None:
    store = _BatchCountingStore(f"sqlite:///{tmp_path / 'log.sqlite3'}")
    store.upgrade()
    log = PredictionLog(store, linger_s=30.0)
    log.start()
    assert log.submit(_record("last"))
    started = time.perf_counter()
    log.close(timeout_s=10)
    assert time.perf_counter() - started < 5, "closing does not wait out the linger"
    assert store.get_prediction("last") is not None
