"""What the phone needs: the rules file, the model file, cache-friendly static files, local API
docs and HTTPS on a local network."""

from __future__ import annotations

import hashlib
import socket
import ssl
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from mushroom_api_testkit import TINY_LABELS, free_port

from mushroom_api.config import Settings
from mushroom_api.main import create_app
from mushroom_api.tls import self_signed_certificate
from mushroom_common.catalog import load_catalog
from mushroom_common.rules_export import RulesDocument


def test_rules_name_the_served_model_and_its_thresholds(client: TestClient) -> None:
    answer = client.get("/model/rules")
    assert answer.status_code == 200
    rules = RulesDocument.model_validate(answer.json())
    model = client.get("/model").json()
    assert (rules.model.name, rules.model.version) == (model["name"], model["version"])
    assert rules.labels == TINY_LABELS
    assert rules.rules.detector_threshold == 0.5
    # Every label and each of its look-alikes is described, with the catalog's feature text.
    catalog = load_catalog()
    for label in rules.labels:
        entry = catalog.get(label)
        assert rules.species[label].edibility == entry.edibility
        for lookalike in entry.lookalikes:
            assert lookalike.id in rules.species
        assert [la.distinguishing_feature for la in rules.species[label].lookalikes] == [
            la.distinguishing_feature for la in entry.lookalikes
        ]
    assert rules.genera["Amanita"].holds_deadly


def test_operator_threshold_overrides_reach_the_phone(settings: Settings) -> None:
    overridden = settings.model_copy(update={"edible_threshold": 0.97, "detector_threshold": 0.2})
    with TestClient(create_app(overridden)) as client:
        rules = client.get("/model/rules").json()["rules"]
    assert (rules["edible_threshold"], rules["detector_threshold"]) == (0.97, 0.2)


def test_model_file_is_served_under_its_sha256(client: TestClient) -> None:
    rules = client.get("/model/rules").json()["model"]
    answer = client.get(f"/model/file/{rules['sha256']}")
    assert answer.status_code == 200
    assert hashlib.sha256(answer.content).hexdigest() == rules["sha256"]
    assert len(answer.content) == rules["size_bytes"]
    assert "immutable" in answer.headers["cache-control"]
    stale = client.get(f"/model/file/{'0' * 64}")
    assert stale.status_code == 404
    assert "no longer served" in stale.json()["detail"]
    assert client.get("/model/file/not-a-hash").status_code == 422


def test_static_files_do_not_vary_on_origin(settings: Settings, tmp_path: Path) -> None:
    # Module scripts are fetched with an Origin header; a Vary: Origin answer makes the
    # service worker's cache miss them offline (a blank page in a new tab).
    dist = tmp_path / "dist"
    (dist / "assets").mkdir(parents=True)
    (dist / "index.html").write_text("<!doctype html><title>Mushroom ID</title>")
    (dist / "assets" / "index-abc.js").write_text("console.log('app');")
    with_frontend = settings.model_copy(update={"frontend_dir": dist})
    with TestClient(create_app(with_frontend)) as client:
        origin = {"Origin": "http://testserver"}
        for path in ("/", "/assets/index-abc.js"):
            answer = client.get(path, headers=origin)
            assert answer.status_code == 200
            assert "origin" not in answer.headers.get("vary", "").lower(), path
        # The API keeps its CORS headers for the allowed origins.
        api = client.get("/healthz", headers={"Origin": "http://localhost:5173"})
        assert api.headers["access-control-allow-origin"] == "http://localhost:5173"


def test_docs_load_without_a_cdn(client: TestClient) -> None:
    page = client.get("/docs").text
    assert "cdn." not in page
    assert "/docs-assets/swagger-ui-bundle.js" in page
    script = client.get("/docs-assets/swagger-ui-bundle.js")
    assert script.status_code == 200
    assert len(script.content) > 100_000
    assert client.get("/docs-assets/swagger-ui.css").status_code == 200
    assert "cdn." not in client.get("/redoc").text


def test_self_signed_certificate_is_reused_and_names_the_addresses(tmp_path: Path) -> None:
    first = self_signed_certificate(tmp_path, "127.0.0.1")
    pem = first.certfile.read_bytes()
    assert first.keyfile.stat().st_mode & 0o077 == 0
    assert self_signed_certificate(tmp_path, "127.0.0.1").certfile.read_bytes() == pem
    # Another address is not covered: a new certificate.
    assert self_signed_certificate(tmp_path, "192.0.2.7").certfile.read_bytes() != pem


@pytest.mark.slow
def test_tls_self_signed_serves_https(tmp_path: Path, demo_dir: Path) -> None:
    port = free_port()
    tls_dir = tmp_path / "tls"
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
        "MUSHROOM_STORAGE_URI": str(tmp_path / "storage"),
        "API_FALLBACK_BUNDLE_DIR": str(demo_dir),
        "API_MODEL_CACHE_DIR": str(tmp_path / "cache"),
    }
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mushroom_api.cli",
            "--port",
            str(port),
            "--tls-self-signed",
            "--tls-dir",
            str(tls_dir),
            "--log-level",
            "warning",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    output = server.stdout.read().decode() if server.stdout else ""
                    raise AssertionError(f"the HTTPS server did not start:\n{output}") from None
                time.sleep(0.2)
        # Verified against the generated certificate: a client that trusts it gets through.
        context = ssl.create_default_context(cafile=str(tls_dir / "cert.pem"))
        with urllib.request.urlopen(
            f"https://127.0.0.1:{port}/healthz", context=context, timeout=10
        ) as answer:
            assert answer.status == 200
            assert answer.read() == b'{"status":"ok"}'
        # A client that does not trust it is refused, as a phone is until told to trust it.
        with pytest.raises(urllib.error.URLError):
            urllib.request.urlopen(f"https://127.0.0.1:{port}/healthz", timeout=10)
    finally:
        server.terminate()
        server.wait(timeout=10)
