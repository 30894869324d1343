"""Photos to a served model and back: the pipeline, a real API (uvicorn), feedback, drift.

One generated world per module: three species of generated photos, a tiny model (no pretrained
weights, 32x32), a real `mushroom-api` subprocess on 127.0.0.1 serving the same storage.
"""

from __future__ import annotations

import io
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from mushroom_pipeline_testkit import TINY_CONFIG, TINY_OVERRIDES, species_photo, write_photo_tree
from typer.testing import CliRunner

from mushroom_common.bundle import ChampionPointer
from mushroom_common.dataset import CollectedPhoto, read_manifest
from mushroom_common.storage import LocalStorage
from mushroom_pipeline.cli import app
from mushroom_pipeline.collect import PipelineError
from mushroom_pipeline.config import get_settings
from mushroom_pipeline.reload import reload_api

pytestmark = pytest.mark.slow

MODEL_NAME = "pipeline-test"
TOKEN = "e2e-admin-token-5f1c"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class World:
    """Everything the scenario shares."""

    root: Path
    storage: LocalStorage
    photos: Path
    config: Path
    api_url: str
    api_log: Path
    first: str

    def run_args(self, *extra: str) -> list[str]:
        overrides = [arg for item in TINY_OVERRIDES for arg in ("--override", item)]
        return [
            "run",
            "--storage",
            str(self.storage.root),
            "--import-folder",
            str(self.photos),
            "--config",
            str(self.config),
            *overrides,
            "--epochs",
            "3",
            "--model-name",
            MODEL_NAME,
            *extra,
        ]


def _start_api(storage_root: Path, cache: Path, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    env = {
        **os.environ,
        "MUSHROOM_STORAGE_URI": str(storage_root),
        "API_ADMIN_TOKEN": TOKEN,
        "API_MODEL_NAME": MODEL_NAME,
        "API_MODEL_CACHE_DIR": str(cache),
        "API_RATE_LIMIT_PER_MINUTE": "0",
    }
    script = Path(sys.executable).with_name("mushroom-api")
    command = (
        [str(script)]
        if script.exists()
        else [sys.executable, "-c", "from mushroom_api.cli import app; app()"]
    )
    handle = log.open("wb")
    process = subprocess.Popen(
        # One worker: the pipeline's POST /admin/reload reaches one process, and /model must
        # then answer from that one.
        [*command, "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
        env=env,
        stdout=handle,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"mushroom-api exited: {log.read_text(errors='replace')[-2000:]}")
        try:
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                return process, url
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    process.terminate()
    raise RuntimeError("mushroom-api did not answer /healthz in 90 s")


def _invoke(args: list[str]) -> str:
    get_settings.cache_clear()
    # The code version is pinned: people edit the training code while this suite runs, and a
    # changed code hash would (rightly) retrain between the first and the second run.
    result = CliRunner().invoke(app, args, env={"PIPELINE_CODE_VERSION": "e2e-pinned"})
    assert result.exit_code == 0, f"{result.output}\n{result.exception!r}"
    # Logs go to stderr (and, once another test configured logging, into .output): parse stdout.
    return result.stdout


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    root = tmp_path_factory.mktemp("e2e")
    storage = LocalStorage(root / "store")
    photos = write_photo_tree(root / "photos")
    if not TINY_CONFIG.is_file():
        pytest.skip(f"model-training's tiny config is missing: {TINY_CONFIG}")
    config = TINY_CONFIG
    with pytest.MonkeyPatch.context() as patch:
        for name in list(os.environ):
            if name.startswith(("PIPELINE_", "COLLECTOR_", "TRAIN_", "API_")):
                patch.delenv(name)
        patch.setenv("TF_CPP_MIN_LOG_LEVEL", "2")
        api_log = root / "api.log"
        process, url = _start_api(storage.root, root / "api-cache", api_log)
        try:
            partial = World(root, storage, photos, config, url, api_log, "")
            first = _invoke(partial.run_args("--api-url", url, "--api-token", TOKEN))
            partial.first = first
            yield partial
        finally:
            process.terminate()
            process.wait(timeout=20)


def _run_record(world: World, output: str) -> dict[str, Any]:
    """The run.json of the run whose summary is output (its last line names the report)."""
    report_uri = output.strip().splitlines()[-1].removeprefix("report: ")
    run_id = report_uri.rsplit("/", 2)[-2]
    text = world.storage.read_text(f"pipelines/runs/{run_id}/run.json")
    record: dict[str, Any] = json.loads(text)
    return record


def _champion(storage: LocalStorage) -> ChampionPointer:
    return ChampionPointer.model_validate_json(
        storage.read_bytes(f"models/{MODEL_NAME}/champion.json")
    )


def _jpeg(species: str, seed: int) -> bytes:
    buffer = io.BytesIO()
    species_photo(species, seed).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def test_first_run_promotes_a_champion_that_the_api_serves(world: World) -> None:
    for step in ("collect", "build", "train", "export", "evaluate", "promote", "reload"):
        assert any(
            line.startswith(f"{step} ") and " done " in line for line in world.first.splitlines()
        ), (
            step,
            world.first,
        )
    champion = _champion(world.storage)
    assert world.storage.exists(f"models/{MODEL_NAME}/{champion.version}/metadata.json")
    model = httpx.get(f"{world.api_url}/model", timeout=10).json()
    assert (model["name"], model["version"]) == (MODEL_NAME, champion.version)
    assert httpx.get(f"{world.api_url}/readyz", timeout=10).status_code == 200
    answer = httpx.post(
        f"{world.api_url}/predict",
        files={"file": ("photo.jpg", _jpeg("amanita_muscaria", 999), "image/jpeg")},
        timeout=30,
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["model"] == {"name": MODEL_NAME, "version": champion.version}
    assert body["verdict"] in ("dangerous", "edible", "uncertain", "not_a_mushroom")
    # Every step's outputs are in the run report and the tracking store.
    run = _run_record(world, world.first)
    assert run["status"] == "FINISHED"
    assert [s["step"] for s in run["steps"]][:3] == ["collect", "build", "train"]
    assert world.storage.exists("tracking/mlflow.db")


def test_second_run_recomputes_nothing(world: World) -> None:
    records_before = world.storage.list("pipelines/steps/")
    bundles_before = world.storage.list(f"models/{MODEL_NAME}/")
    output = _invoke(world.run_args("--api-url", world.api_url, "--api-token", TOKEN))
    steps = [line for line in output.splitlines() if not line.startswith("report:")]
    assert len(steps) == 8, output
    assert all(" skipped " in line and "(already done)" in line for line in steps), output
    assert world.storage.list("pipelines/steps/") == records_before
    assert world.storage.list(f"models/{MODEL_NAME}/") == bundles_before


def test_reload_refuses_a_wrong_token(world: World) -> None:
    with pytest.raises(PipelineError, match="refused the admin token"):
        reload_api(world.api_url, "not-the-token", MODEL_NAME, "some-other-version", 10)


def test_feedback_through_the_api_arrives_in_the_next_collection(world: World) -> None:
    photo = _jpeg("cantharellus_cibarius", 5000)
    answer = httpx.post(
        f"{world.api_url}/predict",
        files={"file": ("new.jpg", photo, "image/jpeg")},
        timeout=30,
    ).json()
    feedback = httpx.post(
        f"{world.api_url}/feedback",
        json={
            "request_id": answer["request_id"],
            "correct": False,
            "species": "cantharellus_cibarius",
            "comment": "it is a chanterelle",
            "share_photo": True,
        },
        timeout=10,
    )
    assert feedback.status_code == 201, feedback.text
    stored = httpx.post(
        f"{world.api_url}/feedback/{feedback.json()['id']}/photo",
        files={"file": ("new.jpg", photo, "image/jpeg")},
        timeout=10,
    )
    assert stored.status_code == 200, stored.text
    assert stored.json()["photo_stored"] is True

    # Continuous training: import the feedback, build, retrain; the gate decides, the API follows.
    args = world.run_args("--with-feedback", "--api-url", world.api_url, "--api-token", TOKEN)
    output = _invoke(args)
    statuses = {line.split()[0]: line.split()[1] for line in output.splitlines()}
    assert [statuses[s] for s in ("collect", "build", "train", "export", "promote")] == ["done"] * 5
    records = [
        CollectedPhoto.model_validate_json(world.storage.read_bytes(key))
        for key in world.storage.list("collected/feedback/")
    ]
    assert len(records) == 1
    assert records[0].source == "feedback"
    assert records[0].needs_review is True
    assert records[0].species == "cantharellus_cibarius"
    steps = {s["step"]: s for s in _run_record(world, output)["steps"]}
    version = steps["build"]["outputs"]["dataset_version"]
    rows = [r for r in read_manifest(world.storage, version) if r.source == "feedback"]
    assert [(r.content_hash, r.split) for r in rows] == [(records[0].content_hash, "train")]
    assert steps["train"]["outputs"]["run_id"]
    decision = steps["promote"]["outputs"]
    champion = _champion(world.storage).version
    assert decision["champion"] == champion
    model = httpx.get(f"{world.api_url}/model", timeout=10).json()
    assert model["version"] == champion


def test_monitor_drift_reads_the_api_prediction_log(world: World) -> None:
    output = _invoke(["monitor-drift", "--storage", str(world.storage.root)])
    reports = [k for k in world.storage.list("monitoring/drift/") if k.endswith("report.json")]
    report = json.loads(world.storage.read_text(reports[-1]))
    # The reference is the model that gave the newest logged answer (the first champion).
    served = f"{report['model_name']}/{report['model_version']}"
    assert [w["model_versions"] for w in report["windows"]] == [[served]]
    assert f"# Drift report: {served}" in output
    reference = json.loads(world.storage.read_text(f"monitoring/reference/{served}.json"))
    assert reference["source"] == "tflite_test_split"
    assert len(reference["confidences"]) == report["reference"]["count"] > 0
    assert sum(w["predictions"] for w in report["windows"]) == 2  # the two /predict calls above
    assert report["drift"] is False  # two answers: too few to flag anything
