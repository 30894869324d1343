"""Route behaviour with a fake classifier injected through dependency overrides."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from mushroom_api_testkit import (
    GREEN,
    IDENTIFICATION_REQUIRED_KEYS,
    PhotoFactory,
    assert_same_pixels_without_metadata,
    fake_metadata,
)
from pydantic import ValidationError

from mushroom_api.config import Settings
from mushroom_api.deps import get_classifier, get_explainers, get_storage
from mushroom_api.main import create_app
from mushroom_api.services.classifier import Classifier, ModelOutputError
from mushroom_api.services.explain import ExplainerPool
from mushroom_common.bundle import (
    DecisionRulesSpec,
    InferenceView,
    OpenSetSpec,
)
from mushroom_common.runtime import Prediction, ViewedPrediction
from mushroom_common.storage import LocalStorage, StorageUnavailableError

CONTRACT_KEYS = IDENTIFICATION_REQUIRED_KEYS | {
    "unknown_species_message",
    "caution",
    "photos",
    "next_photo",
    "prior",
}


class FakeClassifier(Classifier):
    """Answers every photo with fixed probabilities; no interpreter involved.

    With `mirrored` probabilities the bundle asks for two test-time views, the photo answered
    with `probabilities` and its mirror image with `mirrored`.
    """

    def __init__(
        self,
        labels: list[str],
        probabilities: list[float],
        score: float | None,
        mirrored: list[float] | None = None,
    ) -> None:
        views = [InferenceView.ORIGINAL] + ([InferenceView.MIRROR] if mirrored else [])
        self.metadata = fake_metadata(labels, DecisionRulesSpec(test_time_views=views))
        self.input_size = (16, 16)
        self.source = "fake"
        probs = np.array(probabilities, dtype=np.float64)
        self.output = Prediction(np.log(np.clip(probs, 1e-9, 1.0)), probs, score)
        self.mirrored = None if mirrored is None else np.array(mirrored, dtype=np.float64)
        self.seen: list[npt.NDArray[np.uint8]] = []

    async def predict(self, pixels: npt.NDArray[np.uint8]) -> Prediction:
        self.seen.append(pixels)
        return self.output

    async def predict_views(self, pixels: npt.NDArray[np.uint8]) -> ViewedPrediction:
        first = await self.predict(pixels)
        rows = [first.probabilities] + ([self.mirrored] if self.mirrored is not None else [])
        view_probabilities = np.stack(rows)
        view_logits = np.log(np.clip(view_probabilities, 1e-9, 1.0))
        return ViewedPrediction(
            views=self.views,
            logits=view_logits.mean(axis=0),
            probabilities=view_probabilities.mean(axis=0),
            mushroom_score=first.mushroom_score,
            view_logits=view_logits,
            view_probabilities=view_probabilities,
        )

    async def predict_many(self, batch: Sequence[npt.NDArray[np.uint8]]) -> list[Prediction]:
        return [self.output for _ in batch]


@pytest.fixture
def fake_client(app: FastAPI) -> Iterator[tuple[TestClient, FastAPI]]:
    """A client whose classifier the test sets with `use(...)`."""
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client, app


def use(
    app: FastAPI,
    labels: list[str],
    probs: list[float],
    score: float | None = 0.9,
    mirrored: list[float] | None = None,
) -> FakeClassifier:
    fake = FakeClassifier(labels, probs, score, mirrored)
    app.dependency_overrides[get_classifier] = lambda: fake
    # The fake has no model file to load a second interpreter pool from: explain on the fake.
    app.dependency_overrides[get_explainers] = lambda: ExplainerPool(0, 1, 2)
    return fake


def predict(client: TestClient, data: bytes, top_k: int | None = None) -> dict[str, object]:
    params = {"top_k": top_k} if top_k is not None else {}
    response = client.post("/predict", params=params, files={"file": ("p.jpg", data, "image/jpeg")})
    assert response.status_code == 200, response.text
    body: dict[str, object] = response.json()
    return body


def test_predict_answers_with_the_contract_shape(
    fake_client: tuple[TestClient, FastAPI], photo: PhotoFactory
) -> None:
    client, app = fake_client
    fake = use(app, ["amanita_phalloides", "agaricus_campestris"], [0.3, 0.7])
    body = predict(client, photo(GREEN, size=(100, 64)))
    assert set(body) == CONTRACT_KEYS
    assert body["verdict"] == "dangerous"
    assert body["model"] == {"name": "fake", "version": "f1"}
    assert str(body["disclaimer"]).startswith("No app can tell whether a mushroom is safe to eat.")
    assert fake.seen[0].shape == (16, 16, 3)
    assert fake.seen[0].dtype == np.uint8
    predictions = body["predictions"]
    assert isinstance(predictions, list)
    assert [p["species"] for p in predictions] == ["agaricus_campestris", "amanita_phalloides"]
    assert predictions[0]["common_names"][0] == "field mushroom"
    assert predictions[1]["edibility"] == "deadly"
    lookalikes = body["lookalikes"]
    assert isinstance(lookalikes, list)
    assert lookalikes[0]["edibility"] == "deadly"
    assert lookalikes[0]["distinguishing_feature"]


def test_caution_names_the_lookalike_and_unknown_species_gets_a_sentence(
    fake_client: tuple[TestClient, FastAPI], photo: PhotoFactory
) -> None:
    client, app = fake_client
    # A field mushroom with a 3% death cap: not dangerous (5%), but not ruled out (2%).
    use(app, ["amanita_phalloides", "agaricus_campestris"], [0.03, 0.97])
    body = predict(client, photo())
    assert body["verdict"] == "uncertain"
    caution = body["caution"]
    assert isinstance(caution, dict)
    assert caution["species"] == "agaricus_campestris"
    first = caution["lookalikes"][0]
    assert (first["species"], first["edibility"]) == ("amanita_phalloides", "deadly")
    assert first["probability"] == pytest.approx(0.03)
    assert first["view"] == "underside"
    assert first["distinguishing_feature"] in str(body["message"])
    assert body["unknown_species_message"] is None
    # Flat answers look like an unknown species (the demo-style max_probability rule).
    use(app, ["suillus_luteus", "boletus_edulis"], [0.5, 0.5])
    app.dependency_overrides[get_classifier]().metadata.decision_rules.open_set = OpenSetSpec(
        method="max_probability", threshold=-0.6
    )
    flat = predict(client, photo())
    assert flat["possibly_unknown_species"] is True
    assert "never taught" in str(flat["unknown_species_message"])


def test_edible_needs_the_mirror_image_to_agree(
    fake_client: tuple[TestClient, FastAPI], photo: PhotoFactory
) -> None:
    client, app = fake_client
    labels = ["suillus_luteus", "craterellus_cornucopioides"]
    use(app, labels, [0.99, 0.01], mirrored=[0.98, 0.02])
    assert predict(client, photo())["verdict"] == "edible"
    # Averaged, 72% for the slippery jack: edible at a 60% threshold, were the mirror image not
    # answering the horn of plenty.
    fake = use(app, labels, [0.99, 0.01], mirrored=[0.45, 0.55])
    fake.metadata.decision_rules.edible_threshold = 0.6
    body = predict(client, photo())
    assert body["verdict"] == "uncertain"
    assert "not every view gives the same answer" in str(body["message"])


def test_top_k_is_validated_with_a_sentence(
    fake_client: tuple[TestClient, FastAPI], photo: PhotoFactory
) -> None:
    client, app = fake_client
    use(app, ["suillus_luteus", "boletus_edulis"], [0.5, 0.5])
    assert len(predict(client, photo(), top_k=1)["predictions"]) == 1  # type: ignore[arg-type]
    for bad in ("0", "11", "three"):
        response = client.post(
            f"/predict?top_k={bad}", files={"file": ("p.jpg", photo(), "image/jpeg")}
        )
        assert response.status_code == 422
        assert response.json()["detail"].startswith("The request's top_k is not valid")


def test_missing_file_is_422(fake_client: tuple[TestClient, FastAPI]) -> None:
    client, app = fake_client
    use(app, ["suillus_luteus"], [1.0])
    response = client.post("/predict")
    assert response.status_code == 422
    assert response.json() == {"detail": "The request is missing file."}


def test_without_any_model_the_api_is_alive_but_not_ready(
    settings: Settings, tmp_path: Path, photo: PhotoFactory
) -> None:
    empty = settings.model_copy(update={"fallback_bundle_dir": tmp_path / "nothing"})
    with TestClient(create_app(empty)) as client:
        assert client.get("/healthz").json() == {"status": "ok"}
        ready = client.get("/readyz")
        assert ready.status_code == 503
        assert "not loaded" in ready.json()["detail"]
        assert client.get("/model").status_code == 503
        response = client.post("/predict", files={"file": ("p.jpg", photo(), "image/jpeg")})
        assert response.status_code == 503
        assert "try again" in response.json()["detail"]
        assert client.get("/species/boletus_edulis").json()["in_model"] is False


def test_feedback_round_trip_with_shared_photo(
    fake_client: tuple[TestClient, FastAPI], photo: PhotoFactory, settings: Settings
) -> None:
    client, app = fake_client
    use(app, ["suillus_luteus", "boletus_edulis"], [0.6, 0.4])
    data = photo(GREEN, size=(80, 64))
    request_id = predict(client, data)["request_id"]

    created = client.post(
        "/feedback",
        json={
            "request_id": request_id,
            "correct": False,
            "species": "Penny bun",
            "share_photo": True,
        },
    )
    assert created.status_code == 201
    feedback = created.json()
    assert feedback["species"] == "boletus_edulis"
    assert feedback["photo_stored"] is False

    wrong = client.post(
        f"/feedback/{feedback['id']}/photo",
        files={"file": ("p.jpg", photo((1, 2, 3)), "image/jpeg")},
    )
    assert wrong.status_code == 422
    assert "not the photo" in wrong.json()["detail"]

    shared = client.post(
        f"/feedback/{feedback['id']}/photo", files={"file": ("p.jpg", data, "image/jpeg")}
    )
    assert shared.status_code == 200
    assert shared.json()["photo_stored"] is True
    digest = hashlib.sha256(data).hexdigest()
    stored = Path(str(settings.storage_uri)) / "feedback" / "photos" / f"{digest}.jpg"
    assert_same_pixels_without_metadata(stored.read_bytes(), data)

    store = app.state.prediction_store
    logged = store.get_prediction(request_id)
    assert logged.photo_sha256 == digest
    assert logged.top_species == "suillus_luteus"
    assert store.get_feedback(feedback["id"]).photo_key == f"feedback/photos/{digest}.jpg"


def test_feedback_errors(fake_client: tuple[TestClient, FastAPI], photo: PhotoFactory) -> None:
    client, app = fake_client
    use(app, ["suillus_luteus"], [1.0])
    data = photo()
    request_id = predict(client, data)["request_id"]

    unknown = client.post("/feedback", json={"request_id": "nope", "correct": True})
    assert unknown.status_code == 404
    bad_species = client.post(
        "/feedback", json={"request_id": request_id, "correct": False, "species": "unicorn"}
    )
    assert bad_species.status_code == 422
    assert "not a species" in bad_species.json()["detail"]
    too_long = client.post(
        "/feedback", json={"request_id": request_id, "correct": True, "comment": "x" * 1001}
    )
    assert too_long.status_code == 422

    private = client.post("/feedback", json={"request_id": request_id, "correct": True}).json()
    refused = client.post(
        f"/feedback/{private['id']}/photo", files={"file": ("p.jpg", data, "image/jpeg")}
    )
    assert refused.status_code == 403
    missing = client.post("/feedback/nope/photo", files={"file": ("p.jpg", data, "image/jpeg")})
    assert missing.status_code == 404


def test_species_routes(fake_client: tuple[TestClient, FastAPI]) -> None:
    client, _app = fake_client
    all_species = client.get("/species").json()
    assert len(all_species) > 20
    death_cap = client.get("/species/amanita_phalloides").json()
    assert death_cap["edibility"] == "deadly"
    assert death_cap["in_model"] is True  # the tiny demo bundle knows it
    assert death_cap["toxins"]
    missing = client.get("/species/unicornus_fakeus")
    assert missing.status_code == 404
    assert missing.json() == {"detail": "There is no species 'unicornus_fakeus'."}


def test_metrics_count_requests_and_verdicts(
    fake_client: tuple[TestClient, FastAPI], photo: PhotoFactory
) -> None:
    client, app = fake_client
    use(app, ["suillus_luteus", "boletus_edulis"], [0.95, 0.05])
    predict(client, photo())
    text = client.get("/metrics").text
    assert 'mushroom_api_verdicts_total{verdict="edible"}' in text
    assert "suillus_luteus" not in text, "counts per species need the admin token"
    admin = client.get("/metrics", headers={"Authorization": "Bearer test-admin-token"}).text
    assert 'mushroom_api_predictions_total{species="suillus_luteus",verdict="edible"}' in admin
    assert client.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 403
    assert 'mushroom_api_requests_total{method="POST",route="/predict",status="200"}' in text
    assert "mushroom_api_request_seconds_bucket" in text
    assert "mushroom_api_top_probability_bucket" in text
    client.post("/predict", files={"file": ("big.jpg", bytes(16 * 1024 * 1024), "image/jpeg")})
    text = client.get("/metrics").text
    assert 'mushroom_api_requests_total{method="POST",route="/predict",status="413"}' in text


def test_admin_reload_needs_the_token(fake_client: tuple[TestClient, FastAPI]) -> None:
    client, _app = fake_client
    assert client.post("/admin/reload").status_code == 401
    wrong = client.post("/admin/reload", headers={"Authorization": "Bearer wrong"})
    assert wrong.status_code == 403
    assert wrong.json() == {"detail": "The admin token is not valid."}
    ok = client.post("/admin/reload", headers={"Authorization": "Bearer test-admin-token"})
    assert ok.status_code == 200
    assert ok.json()["version"] == "demo-1"


def test_production_refuses_a_placeholder_admin_token() -> None:
    with pytest.raises(ValidationError, match="API_ADMIN_TOKEN"):
        Settings(env="production", admin_token="changeme")
    with pytest.raises(ValidationError, match="shorter than 32"):
        Settings(env="production", admin_token="a-real-long-secret")
    with pytest.raises(ValidationError, match="too few characters"):
        Settings(env="production", admin_token="password" * 5)
    token = "Zq8vL3xW0pR7tY2uK9mN4bC6dF1gH5jS"
    with pytest.raises(ValidationError, match="API_REQUEST_ID_SECRET"):
        Settings(env="production", admin_token=token)
    with pytest.raises(ValidationError, match="API_REQUEST_ID_SECRET"):
        Settings(env="production", admin_token=token, request_id_secret="changeme")
    secret = "pL0kJ9hG8fD7sA6zX5cV4bN3mQ2wE1rT"
    assert Settings(env="production", admin_token=token, request_id_secret=secret).admin_enabled


def test_empty_token_disables_reload(settings: Settings) -> None:
    no_admin = settings.model_copy(update={"admin_token": ""})
    with TestClient(create_app(no_admin)) as client:
        response = client.post("/admin/reload", headers={"Authorization": "Bearer "})
        assert response.status_code in (401, 403)


def test_rate_limit(settings: Settings, photo: PhotoFactory) -> None:
    limited = settings.model_copy(update={"rate_limit_per_minute": 2})
    with TestClient(create_app(limited)) as client:
        statuses = [
            client.post("/predict", files={"file": ("p.jpg", photo(), "image/jpeg")}).status_code
            for _ in range(3)
        ]
        assert statuses == [200, 200, 429]
        blocked = client.post("/predict", files={"file": ("p.jpg", photo(), "image/jpeg")})
        assert int(blocked.headers["retry-after"]) >= 1
        assert "Too many requests" in blocked.json()["detail"]
        assert client.get("/healthz").status_code == 200


def test_cors_allow_list(settings: Settings) -> None:
    allowed = settings.model_copy(update={"cors_origins": ["https://mushroom.example"]})
    with TestClient(create_app(allowed)) as client:
        preflight = {"Access-Control-Request-Method": "POST"}
        ok = client.options("/predict", headers={"Origin": "https://mushroom.example", **preflight})
        assert ok.headers["access-control-allow-origin"] == "https://mushroom.example"
        other = client.options("/predict", headers={"Origin": "https://evil.example", **preflight})
        assert "access-control-allow-origin" not in other.headers


def test_unknown_addresses_and_methods_answer_with_a_sentence(
    fake_client: tuple[TestClient, FastAPI],
) -> None:
    client, _app = fake_client
    assert client.get("/nowhere").json() == {"detail": "There is nothing at this address."}
    wrong_method = client.get("/predict")
    assert wrong_method.status_code == 405
    assert isinstance(wrong_method.json()["detail"], str)


def test_explain_with_fake_model_returns_png(
    fake_client: tuple[TestClient, FastAPI], photo: PhotoFactory
) -> None:
    client, app = fake_client
    use(app, ["suillus_luteus", "boletus_edulis"], [0.6, 0.4])
    response = client.post("/explain", files={"file": ("p.jpg", photo(), "image/jpeg")})
    assert response.status_code == 200
    assert response.content.startswith(b"\x89PNG")
    unknown = client.post(
        "/explain?species=unicornus_fakeus", files={"file": ("p.jpg", photo(), "image/jpeg")}
    )
    assert unknown.status_code == 404
    not_in_model = client.post(
        "/explain?species=amanita_phalloides", files={"file": ("p.jpg", photo(), "image/jpeg")}
    )
    assert not_in_model.status_code == 404
    assert "cannot recognise" in not_in_model.json()["detail"]


class BrokenClassifier(FakeClassifier):
    """A model whose outputs are not finite."""

    async def predict(self, pixels: npt.NDArray[np.uint8]) -> Prediction:
        raise ModelOutputError("non-finite outputs")


def test_model_failure_is_503_not_500(
    fake_client: tuple[TestClient, FastAPI], photo: PhotoFactory
) -> None:
    client, app = fake_client
    broken = BrokenClassifier(["suillus_luteus"], [1.0], None)
    app.dependency_overrides[get_classifier] = lambda: broken
    response = client.post("/predict", files={"file": ("p.jpg", photo(), "image/jpeg")})
    assert response.status_code == 503
    assert "try again" in response.json()["detail"]


def test_storage_failure_is_503_not_500(
    fake_client: tuple[TestClient, FastAPI], photo: PhotoFactory
) -> None:
    client, app = fake_client
    use(app, ["suillus_luteus"], [1.0])
    data = photo()
    request_id = predict(client, data)["request_id"]
    feedback = client.post(
        "/feedback", json={"request_id": request_id, "correct": True, "share_photo": True}
    ).json()

    class DownStorage(LocalStorage):
        def write_bytes_if_absent(
            self, key: str, data: bytes, content_type: str | None = None
        ) -> bool:
            raise StorageUnavailableError("bucket unreachable")

    app.dependency_overrides[get_storage] = lambda: DownStorage(Path("/nonexistent"))
    response = client.post(
        f"/feedback/{feedback['id']}/photo", files={"file": ("p.jpg", data, "image/jpeg")}
    )
    assert response.status_code == 503
    assert response.json() == {
        "detail": "Storage is unavailable right now; please try again later."
    }
