"""POST /predict with several photos, a view per photo, a location and a month (issue 24)."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import httpx
import numpy as np
import numpy.typing as npt
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from mushroom_api_testkit import (
    BLUE,
    GREEN,
    IDENTIFICATION_REQUIRED_KEYS,
    RED,
    PhotoFactory,
    fake_metadata,
    photo_bytes,
)

from mushroom_api.config import Settings
from mushroom_api.deps import get_classifier
from mushroom_api.main import create_app
from mushroom_api.services.classifier import Classifier
from mushroom_common.bundle import (
    DecisionRulesSpec,
    InferenceView,
    MushroomDetectorSpec,
)
from mushroom_common.catalog import Edibility, load_catalog
from mushroom_common.runtime import Prediction, ViewedPrediction
from mushroom_common.store import PredictionStore

TODAY_KEYS = IDENTIFICATION_REQUIRED_KEYS | {"unknown_species_message", "caution"}
LABELS = [
    "agaricus_campestris",  # edible; deadly look-alikes
    "amanita_phalloides",  # deadly, nearly everywhere
    "leucoagaricus_americanus",  # edible, North America only
    "suillus_luteus",  # edible
]


class ColourClassifier(Classifier):
    """Answers each photo by its colour (the mean of its pixels' channels); no interpreter."""

    def __init__(self, answers: dict[tuple[int, int, int], tuple[list[float], float]]) -> None:
        self.metadata = fake_metadata(
            LABELS,
            DecisionRulesSpec(danger_threshold=0.05, edible_threshold=0.8),
            MushroomDetectorSpec(method="test", threshold=0.02),
        )
        self.input_size = (16, 16)
        self.source = "fake"
        self.answers = {
            colour: Prediction(np.log(np.array(p)), np.array(p, dtype=np.float64), score)
            for colour, (p, score) in answers.items()
        }
        self.calls = 0

    def _answer(self, pixels: npt.NDArray[np.uint8]) -> Prediction:
        mean = pixels.reshape(-1, 3).mean(axis=0)
        colour = min(self.answers, key=lambda c: float(np.abs(np.array(c) - mean).sum()))
        return self.answers[colour]

    async def predict(self, pixels: npt.NDArray[np.uint8]) -> Prediction:
        self.calls += 1
        return self._answer(pixels)

    async def predict_many(self, batch: Sequence[npt.NDArray[np.uint8]]) -> list[Prediction]:
        self.calls += len(batch)
        return [self._answer(pixels) for pixels in batch]

    async def predict_views(self, pixels: npt.NDArray[np.uint8]) -> ViewedPrediction:
        answer = await self.predict(pixels)
        return ViewedPrediction(
            views=(InferenceView.ORIGINAL,),
            logits=answer.logits,
            probabilities=answer.probabilities,
            mushroom_score=answer.mushroom_score,
            view_logits=answer.logits[np.newaxis, :],
            view_probabilities=answer.probabilities[np.newaxis, :],
        )


CAP = GREEN  # looks like the field mushroom
GILLS = RED  # the gills say field mushroom more surely
FOREST = BLUE  # not a mushroom at all (a habitat shot)
ANSWERS = {
    CAP: ([0.85, 0.04, 0.08, 0.03], 0.9),
    GILLS: ([0.9, 0.02, 0.05, 0.03], 0.8),
    FOREST: ([0.01, 0.01, 0.01, 0.97], 0.001),
}


@pytest.fixture
def observed(app: FastAPI) -> Iterator[tuple[TestClient, ColourClassifier]]:
    fake = ColourClassifier(ANSWERS)
    app.dependency_overrides[get_classifier] = lambda: fake
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client, fake


def _files(*colours: tuple[int, int, int]) -> list[tuple[str, tuple[str, bytes, str]]]:
    return [("file", (f"p{i}.jpg", photo_bytes(c), "image/jpeg")) for i, c in enumerate(colours)]


def _post(
    client: TestClient,
    *colours: tuple[int, int, int],
    data: dict[str, object] | None = None,
    top_k: int = 4,
) -> httpx.Response:
    return client.post("/predict", params={"top_k": top_k}, files=_files(*colours), data=data or {})


def _same_answer(a: dict[str, object], b: dict[str, object]) -> None:
    for key in TODAY_KEYS - {"request_id"}:
        assert a[key] == b[key], key


def test_one_photo_without_extras_answers_exactly_as_before(
    observed: tuple[TestClient, ColourClassifier],
) -> None:
    """Today's fields equal what the single-photo rules say, with the new blocks neutral."""
    client, _ = observed
    body = _post(client, CAP).json()
    assert set(body) >= TODAY_KEYS
    from mushroom_api.services.identify import verdict_rules
    from mushroom_common.verdict import judge

    fake = ColourClassifier(ANSWERS)
    rules = verdict_rules(Settings(), fake)
    probabilities, score = ANSWERS[CAP]
    judged = judge(np.array(probabilities), LABELS, score, load_catalog(), rules, 4)
    assert body["verdict"] == judged.verdict.value
    assert body["message"] == judged.message
    assert body["predictions"] == [p.model_dump(mode="json") for p in judged.predictions]
    assert body["genera"] == [g.model_dump(mode="json") for g in judged.genera]
    assert body["lookalikes"] == [la.model_dump(mode="json") for la in judged.lookalikes]
    assert body["mushroom_score"] == score
    assert body["possibly_unknown_species"] == judged.possibly_unknown_species
    assert body["unknown_species_message"] == judged.unknown_species_message
    assert body["caution"] == (
        judged.caution.model_dump(mode="json") if judged.caution is not None else None
    )
    assert body["prior"] == {"applied": False, "region": None, "month": None}
    assert [p["index"] for p in body["photos"]] == [0]
    assert body["photos"][0]["top"]["species"] == "agaricus_campestris"
    # And the same through the empty extras an old form might send.
    _same_answer(body, _post(client, CAP, data={"view": ""}).json())


def test_several_photos_give_one_fused_answer_with_each_photos_top(
    observed: tuple[TestClient, ColourClassifier],
) -> None:
    client, fake = observed
    response = _post(client, CAP, GILLS, data={"view": ["cap", "underside"]})
    assert response.status_code == 200, response.text
    body = response.json()
    assert fake.calls == 2
    assert [(p["index"], p["view"]) for p in body["photos"]] == [(0, "cap"), (1, "underside")]
    assert body["photos"][0]["top"]["probability"] == pytest.approx(0.85)
    assert body["photos"][1]["top"]["probability"] == pytest.approx(0.9)
    fused = body["predictions"][0]
    assert fused["species"] == "agaricus_campestris"
    expected = np.sqrt(np.array(ANSWERS[CAP][0]) * np.array(ANSWERS[GILLS][0]))
    assert fused["probability"] == pytest.approx(float(expected[0] / expected.sum()))
    assert body["mushroom_score"] == pytest.approx(0.9)


def test_a_photo_that_shows_no_mushroom_is_left_out_of_the_answer(
    observed: tuple[TestClient, ColourClassifier],
) -> None:
    client, _ = observed
    alone = _post(client, CAP).json()
    with_forest = _post(client, CAP, FOREST, data={"view": ["cap", "habitat"]}).json()
    assert with_forest["photos"][1]["top"]["species"] == "suillus_luteus"
    _same_answer({**alone, "mushroom_score": None}, {**with_forest, "mushroom_score": None})


def test_a_location_demotes_an_out_of_range_species_but_never_the_deadly_one(
    observed: tuple[TestClient, ColourClassifier],
) -> None:
    client, fake = observed
    fake.answers[CAP] = Prediction(
        np.zeros(4), np.array([0.30, 0.04, 0.60, 0.06]), 0.9
    )  # looks most like the American species
    without = _post(client, CAP).json()
    paris = _post(client, CAP, data={"lat": "48.8566", "lon": "2.3522", "month": "9"}).json()
    assert without["predictions"][0]["species"] == "leucoagaricus_americanus"
    assert paris["prior"] == {"applied": True, "region": "europe", "month": 9}
    assert paris["predictions"][0]["species"] == "agaricus_campestris"
    deadly = {p["species"]: p["probability"] for p in paris["predictions"]}
    before = {p["species"]: p["probability"] for p in without["predictions"]}
    assert deadly["amanita_phalloides"] >= before["amanita_phalloides"]
    # The death cap's 4% stays under the 5% danger threshold alone; renormalised after the
    # American species is demoted, it rises above it: the prior can only raise a warning.
    assert without["verdict"] != "dangerous"
    assert paris["verdict"] == "dangerous"


def test_the_prior_never_lowers_a_deadly_warning(
    observed: tuple[TestClient, ColourClassifier],
) -> None:
    client, fake = observed
    fake.answers[CAP] = Prediction(np.zeros(4), np.array([0.10, 0.06, 0.80, 0.04]), 0.9)
    catalog = load_catalog()
    assert catalog.get("amanita_phalloides").edibility is Edibility.DEADLY
    for lat, lon in [(48.0, 2.0), (-34.0, 151.0), (35.0, 139.0), (40.0, -74.0), (0.0, -140.0)]:
        for month in ("1", "7"):
            body = _post(client, CAP, data={"lat": lat, "lon": lon, "month": month}).json()
            assert body["verdict"] == "dangerous", (lat, lon, month)
            probability = next(
                p["probability"]
                for p in body["predictions"]
                if p["species"] == "amanita_phalloides"
            )
            assert probability >= 0.06


def test_the_server_rounds_the_location_before_use(
    observed: tuple[TestClient, ColourClassifier],
) -> None:
    client, _ = observed
    exact = _post(client, CAP, data={"lat": "48.8566", "lon": "2.3522"}).json()
    rounded = _post(client, CAP, data={"lat": "49", "lon": "2"}).json()
    _same_answer(exact, rounded)
    assert exact["prior"] == rounded["prior"]


@pytest.mark.parametrize(
    ("data", "sentence"),
    [
        ({"lat": "91", "lon": "0"}, "The request's lat is not valid"),
        ({"lat": "10", "lon": "-181"}, "The request's lon is not valid"),
        ({"lat": "north", "lon": "0"}, "The request's lat is not valid"),
        ({"lat": "10"}, "Send lat and lon together, or neither."),
        ({"month": "13"}, "The request's month is not valid"),
        ({"month": "0"}, "The request's month is not valid"),
        ({"view": "gills"}, "The view 'gills' is not one of cap, underside"),
        ({"view": ["cap", "ring"]}, "The request has 1 photo but 2 view values"),
    ],
)
def test_bad_extras_are_422_with_a_sentence(
    observed: tuple[TestClient, ColourClassifier], data: dict[str, object], sentence: str
) -> None:
    client, _ = observed
    response = _post(client, CAP, data=data)
    assert response.status_code == 422
    assert response.json()["detail"].startswith(sentence), response.json()


def test_six_photos_are_refused_with_a_sentence(
    observed: tuple[TestClient, ColourClassifier],
) -> None:
    client, fake = observed
    response = _post(client, *([CAP] * 6))
    assert response.status_code == 422
    assert response.json() == {
        "detail": "The form has 6 photos; send 1 to 5 photos of one mushroom per request."
    }
    assert fake.calls == 0
    assert _post(client, *([CAP] * 5)).status_code == 200


def test_a_bad_photo_among_several_is_named(
    observed: tuple[TestClient, ColourClassifier],
) -> None:
    client, _ = observed
    files = [*_files(CAP), ("file", ("p1.jpg", b"\xff\xd8\xff\xe0 truncated", "image/jpeg"))]
    response = client.post("/predict", files=files)
    assert response.status_code in (415, 422)
    assert response.json()["detail"].startswith("Photo 2 of 2: ")


def test_each_photo_keeps_its_limit_and_the_request_a_total(
    settings: Settings, photo: PhotoFactory
) -> None:
    limited = settings.model_copy(update={"max_upload_bytes": 1000, "max_observation_bytes": 2500})
    app = create_app(limited)
    app.dependency_overrides[get_classifier] = lambda: ColourClassifier(ANSWERS)
    small = photo(GREEN, size=(64, 64))
    assert 2500 / 4 < len(small) < 2500 / 3
    big = photo(GREEN, size=(400, 400), quality=100, subsampling=0)
    assert len(big) > 2500
    with TestClient(app, raise_server_exceptions=False) as client:
        too_big = client.post("/predict", files=[("file", ("a.jpg", big, "image/jpeg"))])
        assert too_big.status_code == 413, len(big)
        assert too_big.json()["detail"] == "The photo is too large: the limit is 0 MB."
        # Three photos together are over one photo's limit but within the request's total.
        three = [("file", (f"{i}.jpg", small, "image/jpeg")) for i in range(3)]
        assert client.post("/predict", files=three).status_code == 200
        four = [("file", (f"{i}.jpg", small, "image/jpeg")) for i in range(4)]
        together = client.post("/predict", files=four)
        assert together.status_code == 413
        assert together.json()["detail"].startswith("The photos are too large together")


def test_next_photo_asks_for_the_gills_then_stops_asking(
    observed: tuple[TestClient, ColourClassifier],
) -> None:
    client, _ = observed
    first = _post(client, CAP, data={"view": "cap"}).json()
    assert first["next_photo"]["view"] == "underside"
    assert first["next_photo"]["lookalike"] == "amanita_phalloides"
    assert "death cap" in first["next_photo"]["reason"]
    views = ["cap", "underside"]
    colours = [CAP, GILLS]
    asked = []
    while True:
        body = _post(client, *colours, data={"view": views}).json()
        assert len(body["photos"]) == len(views)
        if body["next_photo"] is None:
            break
        assert body["next_photo"]["view"] not in views
        asked.append(body["next_photo"]["view"])
        views.append(body["next_photo"]["view"])
        colours.append(GILLS)
        assert len(views) <= 5
    assert "underside" not in asked


def test_no_next_photo_for_a_photo_that_is_not_a_mushroom(
    observed: tuple[TestClient, ColourClassifier],
) -> None:
    client, fake = observed
    fake.answers[CAP] = Prediction(np.zeros(4), np.array([0.85, 0.04, 0.08, 0.03]), 0.001)
    body = _post(client, CAP).json()
    assert body["verdict"] == "not_a_mushroom"
    assert body["next_photo"] is None


@pytest.mark.skipif(shutil.which("curl") is None, reason="needs the curl command")
def test_curl_with_two_files_gets_one_answer_from_a_live_server(
    live_server: str, tmp_path: Path
) -> None:
    """`curl -F file=@cap.jpg -F file=@gills.jpg` against a real server and the tiny model."""
    (tmp_path / "cap.jpg").write_bytes(photo_bytes(RED, size=(120, 90)))
    (tmp_path / "gills.jpg").write_bytes(photo_bytes(GREEN, size=(90, 120)))
    done = subprocess.run(
        [
            "curl",
            "--silent",
            "--show-error",
            "--fail-with-body",
            "-F",
            "file=@cap.jpg",
            "-F",
            "file=@gills.jpg",
            f"{live_server}/predict",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    body = json.loads(done.stdout)
    assert [photo["index"] for photo in body["photos"]] == [0, 1]
    assert body["verdict"] in {"dangerous", "uncertain", "edible", "not_a_mushroom"}
    assert body["prior"] == {"applied": False, "region": None, "month": None}
    one = subprocess.run(
        ["curl", "--silent", "--fail-with-body", "-F", "file=@cap.jpg", f"{live_server}/predict"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert one.returncode == 0, one.stdout
    assert len(json.loads(one.stdout)["photos"]) == 1


def test_the_log_keeps_the_first_photo_and_no_place(
    observed: tuple[TestClient, ColourClassifier],
) -> None:
    client, _ = observed
    first, second = photo_bytes(CAP), photo_bytes(GILLS)
    body = client.post(
        "/predict",
        files=[("file", ("a.jpg", first, "image/jpeg")), ("file", ("b.jpg", second, "image/jpeg"))],
        data={"lat": "48.8566", "lon": "2.3522", "month": "9"},
    ).json()
    store: PredictionStore = client.app.state.prediction_store  # type: ignore[attr-defined]
    deadline = time.monotonic() + 10
    while (record := store.get_prediction(body["request_id"])) is None:
        assert time.monotonic() < deadline, "the prediction was never logged"
        time.sleep(0.05)
    assert record.photo_sha256 == hashlib.sha256(first).hexdigest()
    stored = record.model_dump_json()
    for fragment in ("48.8", "2.35", "2.0", "49.0", "lat", "lon"):
        assert fragment not in stored


def test_one_real_photo_answers_as_the_single_photo_path_did(
    client: TestClient, settings: Settings, photo: PhotoFactory
) -> None:
    """With the tiny real model: the API's answer for one file equals the single-photo pipeline
    of before (decode, the bundle's test-time views, judge with the views), field by field."""
    import asyncio

    from mushroom_api.services.identify import prepare_photo, verdict_rules
    from mushroom_common.verdict import judge

    data = photo(RED, size=(120, 90))
    body = client.post("/predict", files={"file": ("p.jpg", data, "image/jpeg")}).json()
    classifier: Classifier = client.app.state.model_holder.current  # type: ignore[attr-defined]

    async def single() -> dict[str, object]:
        prepared = await prepare_photo(data, settings, classifier.input_size)
        output = await classifier.predict_views(prepared.pixels)
        rules = verdict_rules(settings, classifier)
        judged = judge(
            output.probabilities,
            classifier.labels,
            output.mushroom_score,
            load_catalog(),
            rules,
            3,
            unknown_score=rules.unknown_score(output.logits),
            view_probabilities=output.view_probabilities,
        )
        return {
            "verdict": judged.verdict.value,
            "message": judged.message,
            "predictions": [p.model_dump(mode="json") for p in judged.predictions],
            "genera": [g.model_dump(mode="json") for g in judged.genera],
            "lookalikes": [la.model_dump(mode="json") for la in judged.lookalikes],
            "possibly_unknown_species": judged.possibly_unknown_species,
            "unknown_species_message": judged.unknown_species_message,
            "caution": judged.caution.model_dump(mode="json") if judged.caution else None,
            "mushroom_score": output.mushroom_score,
        }

    expected = asyncio.run(single())
    for key, value in expected.items():
        assert body[key] == value, key
    assert body["prior"]["applied"] is False
    assert len(body["photos"]) == 1
