"""The built frontend served at / (without shadowing the API) and the exported OpenAPI schema."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from fastapi.testclient import TestClient
from mushroom_api_testkit import IDENTIFICATION_REQUIRED_KEYS

from mushroom_api.config import Settings
from mushroom_api.main import create_app


def _dist(tmp_path: Path) -> Path:
    dist = tmp_path / "dist"
    (dist / "assets").mkdir(parents=True)
    (dist / "index.html").write_text("<!doctype html><title>Mushroom ID</title>")
    (dist / "sw.js").write_text("self.addEventListener('fetch', () => {});")
    (dist / "assets" / "index-abc123.js").write_text("console.log('app');")
    return dist


def test_frontend_is_served_at_the_root(settings: Settings, tmp_path: Path) -> None:
    with_frontend = settings.model_copy(update={"frontend_dir": _dist(tmp_path)})
    with TestClient(create_app(with_frontend)) as client:
        index = client.get("/")
        assert index.status_code == 200
        assert "Mushroom ID" in index.text
        assert index.headers["cache-control"] == "no-cache"
        sw = client.get("/sw.js")
        assert sw.headers["cache-control"] == "no-cache"
        asset = client.get("/assets/index-abc123.js")
        assert "immutable" in asset.headers["cache-control"]
        # The app has no client-side routes: only / is the page; other addresses are 404.
        for missing in ("/history/42", "/assets/missing.js", "/health", "/api/predict", "/x.png"):
            answer = client.get(missing)
            assert answer.status_code == 404, missing
            assert answer.headers["content-type"] == "application/json", missing
            assert "Mushroom ID" not in answer.text, missing
        for escape in ("/../../etc/passwd", "/%2e%2e/%2e%2e/etc/passwd", "/..%2f..%2fetc%2fpasswd"):
            assert "root:" not in client.get(escape).text
        # API routes keep answering as the API.
        assert client.get("/healthz").json() == {"status": "ok"}
        assert client.get("/species/boletus_edulis").json()["id"] == "boletus_edulis"
        unknown = client.get("/species/unicornus_fakeus")
        assert unknown.status_code == 404
        assert unknown.headers["content-type"] == "application/json"
        assert client.get("/predict").status_code in (404, 405)
        assert client.get("/openapi.json").json()["info"]["title"] == "Mushroom ID API"


def test_no_frontend_means_no_catch_all(client: TestClient) -> None:
    assert client.get("/").status_code == 404


def test_openapi_export_writes_the_contract(tmp_path: Path) -> None:
    out = tmp_path / "openapi.json"
    subprocess.run(
        [sys.executable, "-m", "mushroom_api.openapi_export", str(out)], check=True, timeout=60
    )
    schema = json.loads(out.read_text())
    components = schema["components"]["schemas"]
    for name in (
        "IdentificationPublic",
        "SpeciesPredictionPublic",
        "GenusPredictionPublic",
        "LookalikePublic",
        "ModelRefPublic",
        "FeedbackCreate",
        "FeedbackPublic",
        "SpeciesPublic",
        "ModelInfoPublic",
        "StatusPublic",
        "ErrorPublic",
        "Verdict",
        "Edibility",
    ):
        assert name in components, name
    operations = {op["operationId"] for path in schema["paths"].values() for op in path.values()}
    assert {"predict", "explain", "create_feedback", "feedback_photo", "list_species"} <= operations
    assert set(components["IdentificationPublic"]["required"]) == IDENTIFICATION_REQUIRED_KEYS
