"""Issue 25 item 7: a cached model file damaged under a running server.

Before the fix /explain loaded its own copy without checking it (500 on every call until a
restart), the phone's model download served the damaged bytes as immutable, and POST
/admin/reload changed nothing because the champion had not changed. Now both refuse with a 503
that says so, and a reload downloads the champion again and serves it.
"""

from __future__ import annotations

from pathlib import Path

import httpx
from mushroom_api_process import random_photo
from mushroom_api_testkit import ADMIN_AUTH, BundleFactory, publish_champion, running

from mushroom_api.config import Settings
from mushroom_common.bundle import sha256_file
from mushroom_common.storage import open_storage


def _explain(client: httpx.Client) -> httpx.Response:
    return client.post("/explain", files={"file": ("p.jpg", random_photo(6), "image/jpeg")})


def test_a_damaged_cached_model_is_refused_and_repaired_by_reload(
    tmp_path: Path, settings: Settings, bundle_factory: BundleFactory
) -> None:
    folder = tmp_path / "build" / "v1"
    metadata = bundle_factory(folder, version="v1")
    publish_champion(open_storage(settings.storage_uri), folder, metadata)
    cached = settings.model_cache_dir / "mushroom" / "v1" / metadata.variant().path
    with running(settings) as client:
        assert client.get("/model").json()["source"] == "registry"
        sha256 = client.get("/model/rules").json()["model"]["sha256"]
        assert sha256_file(cached) == sha256
        cached.write_bytes(b"\x00" * cached.stat().st_size)  # bit rot, a bad disk, a bad copy

        for _ in range(2):
            refused = _explain(client)
            assert refused.status_code == 503, (refused.status_code, refused.text)
            assert "reload repairs" in refused.json()["detail"]
        download = client.get(f"/model/file/{sha256}")
        assert download.status_code == 503, download.status_code
        assert (
            client.post("/predict", files={"file": ("p.jpg", random_photo(7))}).status_code == 200
        )

        reloaded = client.post("/admin/reload", headers=ADMIN_AUTH)
        assert reloaded.status_code == 200, reloaded.text
        assert sha256_file(cached) == sha256, "the damaged cache entry is downloaded again"
        assert _explain(client).status_code == 200
        repaired = client.get(f"/model/file/{sha256}")
        assert repaired.status_code == 200
        assert len(repaired.content) == cached.stat().st_size
