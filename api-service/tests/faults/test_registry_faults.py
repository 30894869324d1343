"""Registry faults against a real uvicorn server (issue 15, items 2 and 11).

- A reload during a storage outage, or with a corrupt or hostile champion pointer, keeps the
  served model, answers 503 with a sentence, and is counted in /metrics.
- The demo bundle is served only when the registry truly has no champion at first start, and
  GET /model says where the served model came from.
- Startup with an unreadable registry or a hostile pointer does not crash: it serves the last
  cached champion or the demo, and /readyz says why.
- The reload watcher survives every failure, so a later promotion still loads.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from mushroom_api_testkit import ADMIN_AUTH, BundleFactory, publish_champion, running

from mushroom_api.config import Settings
from mushroom_common.storage import LocalStorage, Storage, open_storage

POINTER_KEY = "models/mushroom/champion.json"


def metric(client: httpx.Client, name: str, **labels: str) -> float:
    """One sample of the server's /metrics (0 when absent)."""
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    pattern = re.compile(rf"^{re.escape(name)}\{{{re.escape(wanted)}\}} (\S+)$", re.M)
    found = pattern.search(client.get("/metrics").text)
    return float(found.group(1)) if found else 0.0


def wait_for(condition: Callable[[], bool], timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("the condition did not hold in time")
        time.sleep(0.1)


def hostile_pointer(version: str) -> bytes:
    return (
        f'{{"name": "mushroom", "version": "{version}", '
        '"promoted_at": "2026-12-01T00:00:00Z", "reason": "hostile"}'
    ).encode()


@pytest.fixture
def publish_version(
    tmp_path: Path, bundle_factory: BundleFactory
) -> Callable[[Storage, str], None]:
    def publish(storage: Storage, version: str) -> None:
        folder = tmp_path / "build" / version
        publish_champion(storage, folder, bundle_factory(folder, version=version))

    return publish


def test_reload_during_a_storage_outage_keeps_the_model_and_says_so(
    gcs_emulator: tuple[Any, str],
    settings: Settings,
    publish_version: Callable[[Storage, str], None],
    caplog: pytest.LogCaptureFixture,
) -> None:
    emulator, uri = gcs_emulator
    publish_version(open_storage(uri), "v1")
    with running(settings.model_copy(update={"storage_uri": uri})) as client:
        assert client.get("/model").json()["source"] == "registry"
        before = metric(
            client, "mushroom_api_model_reload_failures_total", reason="registry_unavailable"
        )
        emulator.stop()
        answer = client.post("/admin/reload", headers=ADMIN_AUTH)
        assert answer.status_code == 503
        detail = answer.json()["detail"]
        assert detail.startswith("The new model could not be loaded, so the old one stays.")
        assert "registry cannot be read" in detail
        model = client.get("/model").json()
        assert (model["version"], model["source"]) == ("v1", "registry")
        assert client.get("/readyz").json() == {"status": "ok"}
        after = metric(
            client, "mushroom_api_model_reload_failures_total", reason="registry_unavailable"
        )
        assert after == before + 1
    assert any("reload failed (registry_unavailable)" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize(
    ("pointer", "reason"),
    [
        (b'{"name": "mushroom", "version": ', "invalid_pointer"),  # truncated JSON
        (b"\x00\xff not json at all", "invalid_pointer"),
        (hostile_pointer("../../etc"), "invalid_pointer"),
        (hostile_pointer("v1/../../x"), "invalid_pointer"),
        (hostile_pointer("v9"), "bundle_missing"),  # a version that is not in the registry
    ],
)
def test_reload_with_a_corrupt_or_hostile_pointer_keeps_the_model(
    settings: Settings,
    publish_version: Callable[[Storage, str], None],
    pointer: bytes,
    reason: str,
) -> None:
    storage = LocalStorage(Path(str(settings.storage_uri)))
    publish_version(storage, "v1")
    with running(settings) as client:
        assert client.get("/model").json()["version"] == "v1"
        before = metric(client, "mushroom_api_model_reload_failures_total", reason=reason)
        storage.write_bytes(POINTER_KEY, pointer)
        answer = client.post("/admin/reload", headers=ADMIN_AUTH)
        assert answer.status_code == 503
        detail = answer.json()["detail"]
        assert detail.startswith("The new model could not be loaded, so the old one stays. The ")
        assert detail.endswith(".")
        model = client.get("/model").json()
        assert (model["version"], model["source"]) == ("v1", "registry")
        assert client.post("/predict", files={"file": ("p.png", _png(), "image/png")}).json()[
            "model"
        ] == {"name": "mushroom", "version": "v1"}
        after = metric(client, "mushroom_api_model_reload_failures_total", reason=reason)
        assert after == before + 1


def test_the_demo_is_served_only_for_a_truly_empty_registry(settings: Settings) -> None:
    with running(settings) as client:
        model = client.get("/model").json()
        assert (model["version"], model["source"]) == ("demo-1", "demo_fallback")
        assert model["degraded_reason"] is None
        assert client.get("/readyz").json() == {"status": "ok"}
        # Still no champion: reloading keeps the demo and succeeds.
        assert client.post("/admin/reload", headers=ADMIN_AUTH).status_code == 200


def test_startup_with_a_hostile_pointer_serves_the_demo_and_readyz_says_why(
    settings: Settings,
) -> None:
    LocalStorage(Path(str(settings.storage_uri))).write_bytes(
        POINTER_KEY, hostile_pointer("../../../etc/passwd")
    )
    with running(settings) as client:
        model = client.get("/model").json()
        assert (model["version"], model["source"]) == ("demo-1", "demo_fallback")
        ready = client.get("/readyz")
        assert ready.status_code == 200
        assert ready.json()["status"] == "degraded"
        assert ready.json()["reason"] == (
            "The registry's champion pointer is not valid, so the demo model is served."
        )
        assert model["degraded_reason"] == ready.json()["reason"].rstrip(".")


def test_startup_during_an_outage_serves_the_cached_champion(
    gcs_emulator: tuple[Any, str],
    settings: Settings,
    publish_version: Callable[[Storage, str], None],
) -> None:
    _emulator, uri = gcs_emulator
    publish_version(open_storage(uri), "v1")
    with running(settings.model_copy(update={"storage_uri": uri})) as client:
        assert client.get("/model").json()["source"] == "registry"
    # The registry cannot be read at the next start: its bucket is gone. (A stopped emulator
    # makes google-cloud-storage's own bucket check retry for minutes: issue 15 item 5.)
    gone = settings.model_copy(update={"storage_uri": "gs://bucket-that-is-gone/prefix"})
    with running(gone) as client:
        model = client.get("/model").json()
        assert (model["version"], model["source"]) == ("v1", "cache")
        ready = client.get("/readyz").json()
        assert ready == {
            "status": "degraded",
            "reason": "The model registry cannot be read right now, so the last cached "
            "champion model is served.",
        }
        # The served model answers; a reload while the registry is down keeps it.
        assert (
            client.post("/predict", files={"file": ("p.png", _png(), "image/png")}).json()["model"][
                "version"
            ]
            == "v1"
        )
        assert client.post("/admin/reload", headers=ADMIN_AUTH).status_code == 503
        assert client.get("/model").json()["source"] == "cache"


def test_the_watcher_survives_every_failure_and_loads_a_later_promotion(
    settings: Settings, publish_version: Callable[[Storage, str], None]
) -> None:
    storage = LocalStorage(Path(str(settings.storage_uri)))
    publish_version(storage, "v1")
    with running(settings.model_copy(update={"reload_poll_seconds": 0.2})) as client:
        assert client.get("/model").json()["version"] == "v1"
        failures = metric(
            client, "mushroom_api_model_reload_failures_total", reason="invalid_pointer"
        )
        watch_errors = metric(
            client, "mushroom_api_model_watch_errors_total", kind="InvalidPointerError"
        )
        for pointer in (hostile_pointer("../v1"), b"{corrupt"):
            storage.write_bytes(POINTER_KEY, pointer)
            wait_for(
                lambda seen=watch_errors: (
                    metric(
                        client, "mushroom_api_model_watch_errors_total", kind="InvalidPointerError"
                    )
                    > seen
                )
            )
            watch_errors = metric(
                client, "mushroom_api_model_watch_errors_total", kind="InvalidPointerError"
            )
        assert client.get("/model").json()["version"] == "v1"
        # A promotion of a damaged bundle: the watcher's reload fails, the model stays.
        publish_version(storage, "v2")
        storage.write_bytes("models/mushroom/v2/model_int8.tflite", b"not a model")
        wait_for(
            lambda: (
                metric(client, "mushroom_api_model_reload_failures_total", reason="bundle_damaged")
                > 0
            )
        )
        assert client.get("/model").json()["version"] == "v1"
        # A good promotion still loads.
        publish_version(storage, "v3")
        wait_for(lambda: client.get("/model").json()["version"] == "v3")
        assert client.get("/model").json()["source"] == "registry"
        assert (
            metric(client, "mushroom_api_model_reload_failures_total", reason="invalid_pointer")
            == failures
        )


def _png() -> bytes:
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (96, 96), (0, 200, 0)).save(buffer, format="PNG")
    return buffer.getvalue()
