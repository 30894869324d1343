"""Content-addressed steps: keys, skipping, invalidation, resuming, feedback never graded."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from mushroom_pipeline_testkit import species_photo, write_photo_tree
from typer.testing import CliRunner

from mushroom_common.dataset import CollectedPhoto, ManifestRow
from mushroom_common.storage import LocalStorage
from mushroom_pipeline.cli import app
from mushroom_pipeline.collect import (
    CollectOptions,
    PipelineError,
    check_feedback_splits,
    collect_inputs,
)
from mushroom_pipeline.config import Settings
from mushroom_pipeline.definition import STEPS_BY_NAME, StepContext
from mushroom_pipeline.runner import code_version
from mushroom_pipeline.steps import StepCache, step_key


def test_step_key_depends_on_inputs_not_their_order() -> None:
    assert step_key("train", {"a": 1, "b": [1, 2]}) == step_key("train", {"b": [1, 2], "a": 1})
    assert step_key("train", {"a": 1}) != step_key("train", {"a": 2})
    assert step_key("train", {"a": 1}) != step_key("export", {"a": 1})


def test_a_step_runs_once_per_key_and_again_when_its_outputs_are_gone(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    calls: list[int] = []

    def compute() -> dict[str, object]:
        calls.append(1)
        storage.write_text("out/result.txt", "made")
        return {"result": "out/result.txt"}

    def still_valid(outputs: dict[str, object]) -> bool:
        return storage.exists(str(outputs["result"]))

    first = StepCache(storage, "run-1").run("make", {"x": 1}, compute, still_valid)
    second = StepCache(storage, "run-2").run("make", {"x": 1}, compute, still_valid)
    assert (first.status, second.status, len(calls)) == ("done", "skipped", 1)
    assert second.outputs == first.outputs
    record = json.loads(storage.read_text(f"pipelines/steps/make/{first.key}.json"))
    assert record["pipeline_run_id"] == "run-1"
    assert record["inputs"] == {"x": 1}
    storage.delete("out/result.txt")
    third = StepCache(storage, "run-3").run("make", {"x": 1}, compute, still_valid)
    assert (third.status, len(calls)) == ("done", 2)
    other = StepCache(storage, "run-4").run("make", {"x": 2}, compute, still_valid)
    assert (other.status, len(calls)) == ("done", 3)


def _row(content_hash: str, split: str, source: str) -> ManifestRow:
    return ManifestRow.model_validate(
        {
            "content_hash": content_hash,
            "image_key": f"photos/{content_hash[:2]}/{content_hash}.jpg",
            "species": "boletus_edulis",
            "split": split,
            "group_id": f"g-{content_hash}",
            "source": source,
            "license": "unlicensed",
            "width": 96,
            "height": 96,
        }
    )


def _write_version(storage: LocalStorage, version: str, rows: list[ManifestRow]) -> None:
    storage.write_text(
        f"datasets/{version}/manifest.jsonl", "".join(r.model_dump_json() + "\n" for r in rows)
    )
    storage.write_text(f"datasets/{version}/_COMPLETE", "{}")


def _feedback_record(storage: LocalStorage, content_hash: str, needs_review: bool) -> None:
    record = CollectedPhoto(
        record_id=f"feedback-{content_hash[:6]}",
        content_hash=content_hash,
        image_key=f"photos/{content_hash[:2]}/{content_hash}.jpg",
        species="boletus_edulis",
        source="feedback",
        license="shared-by-user",
        needs_review=needs_review,
        collected_at=datetime.now(UTC),
    )
    storage.write_text(f"collected/feedback/{record.record_id}.json", record.model_dump_json())


def test_unreviewed_feedback_in_val_or_test_stops_the_pipeline(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    _feedback_record(storage, "a" * 64, needs_review=True)
    _feedback_record(storage, "b" * 64, needs_review=False)
    good = [_row("a" * 64, "train", "feedback"), _row("b" * 64, "test", "feedback")]
    _write_version(storage, "ds-good", [*good, _row("c" * 64, "test", "folder")])
    assert check_feedback_splits(storage, "ds-good") == {"train": 1, "val": 0, "test": 1}
    _write_version(storage, "ds-bad", [_row("a" * 64, "test", "feedback")])
    with pytest.raises(PipelineError, match="unreviewed feedback"):
        check_feedback_splits(storage, "ds-bad")
    # The build step declares this check, so `run` and every `step build` (KFP) run it.
    (check,) = STEPS_BY_NAME["build"].checks
    context = StepContext(storage, Settings(), tmp_path / "runs", "test-code", "pytest")
    with pytest.raises(PipelineError, match="unreviewed feedback"):
        check.run(context, {}, {"dataset_version": "ds-bad"})


def test_a_failed_run_resumes_after_the_last_finished_step(
    tmp_path: Path, tiny_config: Path
) -> None:
    photos = write_photo_tree(tmp_path / "photos", per_species=8)
    store = tmp_path / "store"
    base = ["run", "--storage", str(store), "--import-folder", str(photos)]
    runner = CliRunner()
    failed = runner.invoke(
        app, [*base, "--config", str(tiny_config), "--override", "training.phase1_epochs=0"]
    )
    assert failed.exit_code == 1, failed.output
    storage = LocalStorage(store)
    run = json.loads(
        storage.read_text(next(k for k in storage.list("pipelines/runs/") if k.endswith(".json")))
    )
    assert run["status"] == "FAILED"
    assert [(s["step"], s["status"]) for s in run["steps"]] == [
        ("collect", "done"),
        ("build", "done"),
        ("train", "failed"),
    ]
    resumed = runner.invoke(app, [*base, "--stop-after", "build"])
    assert resumed.exit_code == 0, resumed.output
    lines = resumed.stdout.splitlines()
    assert lines[0].startswith("collect   skipped  (already done)")
    assert lines[1].startswith("build     skipped  (already done) dataset ds-")


def test_collect_inputs_change_when_a_folder_gains_a_photo(tmp_path: Path) -> None:
    photos = write_photo_tree(tmp_path / "photos", per_species=2)
    storage = LocalStorage(tmp_path / "store")
    options = CollectOptions(import_folders=[photos])
    before = collect_inputs(storage, options)
    assert collect_inputs(storage, options) == before
    species_photo("boletus_edulis", 77).save(photos / "boletus_edulis" / "new.jpg")
    after = collect_inputs(storage, options)
    assert after != before
    assert step_key("collect", after) != step_key("collect", before)


def test_data_steps_and_records_work_on_a_gcs_bucket(
    tmp_path: Path, gcs_emulator: tuple[object, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    _emulator, uri = gcs_emulator
    monkeypatch.setenv("TRAIN_RUNS_DIR", str(tmp_path / "runs"))
    photos = write_photo_tree(tmp_path / "photos", per_species=4)
    args = ["run", "--storage", uri, "--import-folder", str(photos), "--stop-after", "build"]
    first = CliRunner().invoke(app, args)
    assert first.exit_code == 0, first.output
    second = CliRunner().invoke(app, args)
    assert second.exit_code == 0, second.output
    assert [line.split()[:2] for line in second.stdout.splitlines()[:2]] == [
        ["collect", "skipped"],
        ["build", "skipped"],
    ]
    version = second.stdout.splitlines()[1].split("dataset ")[1].split()[0]
    assert f"dataset {version}" in first.stdout
    # Runs on a bucket keep the tracking store in the local runs folder.
    assert (tmp_path / "runs" / "tracking" / "mlflow.db").is_file()


def test_code_version_hashes_the_training_code_unless_pinned(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    first = code_version(Settings())
    assert first.startswith("src-")
    assert code_version(Settings()) == first
    monkeypatch.setenv("PIPELINE_CODE_VERSION", "image-sha256-abc")
    assert code_version(Settings()) == "image-sha256-abc"
