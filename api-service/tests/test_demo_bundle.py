"""The repository's demo bundle on real field photos (skipped when either is absent)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from mushroom_api.config import Settings
from mushroom_api.main import create_app

pytestmark = pytest.mark.slow

REPO_ROOT = Path(__file__).resolve().parents[2]
DEMO_DIR = REPO_ROOT / "models" / "demo"
FIELD_PHOTOS = REPO_ROOT.parent / "shared" / "data" / "nordic-field"
DANGEROUS_SPECIES = ("amanita_virosa", "amanita_muscaria")


@pytest.fixture
def demo_app_client(settings: Settings) -> TestClient:
    if not (DEMO_DIR / "metadata.json").is_file():
        pytest.skip(f"no demo bundle at {DEMO_DIR} yet")
    return TestClient(create_app(settings.model_copy(update={"fallback_bundle_dir": DEMO_DIR})))


@pytest.fixture
def demo_client(demo_app_client: TestClient) -> TestClient:
    if not FIELD_PHOTOS.is_dir():
        pytest.skip(f"no field photos at {FIELD_PHOTOS}")
    return demo_app_client


def test_every_served_label_resolves_in_the_species_list(demo_app_client: TestClient) -> None:
    with demo_app_client as client:
        labels = client.get("/model").json()["labels"]
        species = {s["id"]: s for s in client.get("/species").json()}
    assert len(labels) >= 250
    assert all(label in species and species[label]["in_model"] for label in labels)


def test_answers_carry_the_genus_ranking(demo_app_client: TestClient) -> None:
    photo = DEMO_DIR / "gradcam.png"  # any decodable picture: the ranking is always present
    with demo_app_client as client:
        answer = client.post("/predict", files={"file": ("p.png", photo.read_bytes())}).json()
    genera = answer["genera"]
    assert 1 <= len(genera) <= 3
    assert [g["probability"] for g in genera] == sorted(
        (g["probability"] for g in genera), reverse=True
    )
    assert all(g["family"] for g in genera)


def test_deadly_and_poisonous_field_photos_are_never_called_edible(
    demo_client: TestClient,
) -> None:
    verdicts: Counter[str] = Counter()
    with demo_client as client:
        assert client.get("/model").json()["name"]
        for species in DANGEROUS_SPECIES:
            for path in sorted((FIELD_PHOTOS / species).iterdir()):
                response = client.post(
                    "/predict", files={"file": (path.name, path.read_bytes(), "image/jpeg")}
                )
                assert response.status_code == 200, f"{path}: {response.text}"
                verdicts[response.json()["verdict"]] += 1
    assert sum(verdicts.values()) >= 2 * 25
    assert verdicts["edible"] == 0, f"verdicts on deadly/poisonous photos: {dict(verdicts)}"
