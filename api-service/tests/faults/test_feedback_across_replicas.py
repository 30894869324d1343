"""Issue 25 item 12: feedback sent to another replica right after the answer.

Two API processes on one PostgreSQL. Before the fix 0 of 10 feedbacks sent to the second
replica at once were accepted (404: the first replica's prediction log writes off the request
path, 0.1 s later); request ids are now signed by the service, so any replica accepts feedback on
one at once, and the feedback joins its prediction when that row lands.
"""

from __future__ import annotations

import concurrent.futures
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from mushroom_api_process import random_photo
from mushroom_faults_kit import ApiProcess, api_env, make_demo, start_api

from mushroom_common.store import PredictionStore

ROUNDS = 10


@pytest.fixture
def replicas(
    tmp_path: Path, tiny_tflite: Path, postgres_url: str
) -> Iterator[tuple[ApiProcess, ApiProcess]]:
    demo = make_demo(tmp_path, tiny_tflite)
    started: list[ApiProcess] = []
    try:
        for name in ("a", "b"):
            root = tmp_path / name
            root.mkdir()
            env = api_env(root, demo, MUSHROOM_DATABASE_URL=postgres_url)
            started.append(start_api(root, env))
        yield started[0], started[1]
    finally:
        for api in started:
            api.stop()


def test_feedback_right_after_the_answer_on_another_replica_is_kept(
    replicas: tuple[ApiProcess, ApiProcess], postgres_url: str
) -> None:
    first, second = replicas
    accepted: list[httpx.Response] = []
    request_ids: list[str] = []
    with first.client() as a, second.client() as b:
        for n in range(ROUNDS):
            answer = a.post("/predict", files={"file": ("p.jpg", random_photo(n), "image/jpeg")})
            assert answer.status_code == 200, answer.text
            request_id = answer.json()["request_id"]
            request_ids.append(request_id)
            accepted.append(
                b.post(
                    "/feedback",
                    json={"request_id": request_id, "correct": n % 2 == 0},
                    headers={"Idempotency-Key": f"tap-{n}"},
                )
            )
        statuses = [response.status_code for response in accepted]
        assert statuses == [201] * ROUNDS, statuses

        # Retries of one tap on both replicas at once store it once.
        answer = a.post("/predict", files={"file": ("p.jpg", random_photo(99), "image/jpeg")})
        retry_id = answer.json()["request_id"]
        body = {"request_id": retry_id, "correct": True}

        def send(client: httpx.Client) -> httpx.Response:
            return client.post("/feedback", json=body, headers={"Idempotency-Key": "retry"})

        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            retries = list(pool.map(send, [b, a, b, a]))
        assert sorted(r.status_code for r in retries) in ([200, 200, 200, 201],), retries
        assert len({r.json()["id"] for r in retries}) == 1

        # Ids the service did not sign are still refused without a logged answer.
        for invented in (
            uuid.uuid4().hex,
            request_id[:-1] + ("0" if request_id[-1] != "0" else "1"),
        ):
            refused = b.post("/feedback", json={"request_id": invented, "correct": True})
            assert refused.status_code == 404, (invented, refused.text)

    store = PredictionStore(postgres_url)
    try:
        deadline = time.monotonic() + 10
        while store.count_predictions() < ROUNDS + 1 and time.monotonic() < deadline:
            time.sleep(0.2)
        feedback = store.feedback()
        assert len(feedback) == ROUNDS + 1
        for record in feedback:
            assert store.get_prediction(record.request_id) is not None, "joined once it landed"
    finally:
        store.close()
