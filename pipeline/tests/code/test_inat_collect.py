"""`run --species ... --max-per-species N` collects from iNaturalist (a local fake of API v1)."""

from __future__ import annotations

import io
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
from mushroom_pipeline_testkit import species_photo
from typer.testing import CliRunner

from mushroom_common.dataset import CollectedPhoto
from mushroom_common.storage import LocalStorage
from mushroom_pipeline.cli import app

TAXON_ID = 48701  # Boletus edulis


def _jpeg(seed: int) -> bytes:
    buffer = io.BytesIO()
    species_photo("boletus_edulis", seed, size=128).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


@pytest.fixture
def fake_inat() -> Iterator[str]:
    """/v1/taxa, /v1/observations (paged by id_above) and the photos, shaped like API v1."""
    photos = {f"/photos/{i}/medium.jpg": _jpeg(i) for i in range(1, 6)}
    state: dict[str, str] = {}

    def observation(i: int) -> dict[str, Any]:
        return {
            "id": 1000 + i,
            "uri": f"https://www.inaturalist.org/observations/{1000 + i}",
            "quality_grade": "research",
            "observed_on": "2025-09-01",
            "taxon": {"id": TAXON_ID, "rank": "species"},
            "user": {"id": i, "login": f"forager{i}"},
            "photos": [
                {
                    "id": i,
                    "license_code": "cc-by",
                    "attribution": f"(c) forager{i}, some rights reserved (CC BY)",
                    "url": f"{state['host']}/photos/{i}/square.jpg",
                }
            ],
        }

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            url = urlsplit(self.path)
            params = dict(parse_qsl(url.query))
            body: bytes
            if url.path == "/v1/taxa":
                results = [{"id": TAXON_ID, "name": "Boletus edulis", "rank": "species"}]
                body = json.dumps({"total_results": 1, "results": results}).encode()
                kind = "application/json"
            elif url.path == "/v1/observations":
                above = int(params.get("id_above", "0"))
                rows = [observation(i) for i in range(1, 6) if 1000 + i > above][:2]
                page = {"total_results": 5, "per_page": 2, "results": rows}
                body, kind = json.dumps(page).encode(), "application/json"
            elif url.path in photos:
                body, kind = photos[url.path], "image/jpeg"
            else:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state["host"] = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield state["host"]
    server.shutdown()
    server.server_close()


def test_run_collects_from_inaturalist_and_skips_the_same_query(
    tmp_path: Path, fake_inat: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLLECTOR_INAT_BASE_URL", f"{fake_inat}/v1")
    monkeypatch.setenv("COLLECTOR_BACKOFF_BASE_S", "0")
    store = tmp_path / "store"
    args = ["run", "--storage", str(store), "--species", "Boletus edulis"]
    args += ["--max-per-species", "3", "--stop-after", "collect"]
    first = CliRunner().invoke(app, args)
    assert first.exit_code == 0, first.output
    storage = LocalStorage(store)
    records = [
        CollectedPhoto.model_validate_json(storage.read_bytes(key))
        for key in storage.list("collected/inaturalist/")
    ]
    assert len(records) == 3
    assert {r.species for r in records} == {"boletus_edulis"}
    assert all(r.license == "cc-by" and r.observer for r in records)
    second = CliRunner().invoke(app, args)
    assert second.exit_code == 0, second.output
    assert second.stdout.startswith("collect   skipped  (already done)")
