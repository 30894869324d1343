"""Feedback import and the command line (typer's runner, real storage)."""

from __future__ import annotations

import io
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from mushroom_collector.cli import app
from mushroom_collector.images import sha256_hex
from mushroom_collector.records import load_records
from mushroom_common.dataset import read_manifest
from mushroom_common.storage import LocalStorage
from mushroom_common.store import (
    FEEDBACK_PHOTOS_PREFIX,
    FeedbackRecord,
    PredictionRecord,
    PredictionStore,
    resolve_database_url,
)

MakeJpeg = Callable[..., bytes]
START = datetime(2026, 9, 1, tzinfo=UTC)


def _with_gps(data: bytes) -> bytes:
    image = Image.open(io.BytesIO(data))
    exif = image.getexif()
    exif[0x8825] = {1: "N", 2: (59.0, 20.0, 0.0)}  # GPS IFD: where someone found their mushrooms
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", exif=exif)
    return buffer.getvalue()


def _feedback_store(storage: LocalStorage, make_jpeg: MakeJpeg, count: int) -> PredictionStore:
    # The default database of this storage root, where the CLI looks without --database-url.
    store = PredictionStore(resolve_database_url(storage=storage))
    store.upgrade()
    for i in range(count):
        data = _with_gps(make_jpeg(500 + i))
        key = f"{FEEDBACK_PHOTOS_PREFIX}/{sha256_hex(data)}.jpg"
        storage.write_bytes(key, data, "image/jpeg")
        when = START + timedelta(minutes=i)
        store.add_predictions(
            [
                PredictionRecord(
                    request_id=f"req-{i}",
                    created_at=when,
                    photo_sha256=sha256_hex(data),
                    model_name="demo",
                    model_version="1",
                    verdict="identified",
                    top_species="boletus_edulis",
                    top_probability=0.9,
                    mushroom_score=0.99,
                )
            ]
        )
        correct = i % 3 == 0
        store.add_feedback(
            FeedbackRecord(
                id=f"fb-{i}",
                created_at=when,
                request_id=f"req-{i}",
                idempotency_key=f"key-{i}",
                correct=correct,
                species=None if correct else "imleria_badia",
                comment=None,
                share_photo=i % 5 != 4,  # every fifth person did not share
                photo_key=key,
            )
        )
    return store


def test_feedback_becomes_unreviewed_train_only_photos(
    tmp_path: Path, storage: LocalStorage, make_jpeg: MakeJpeg
) -> None:
    store = _feedback_store(storage, make_jpeg, 20)
    store.close()
    runner = CliRunner()
    env = {"MUSHROOM_STORAGE_URI": str(storage.root)}
    tree = tmp_path / "tree"
    for i in range(40):
        path = tree / ("boletus_edulis" if i % 2 else "imleria_badia") / f"{i}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(make_jpeg(i))

    imported = runner.invoke(app, ["import-feedback", "--quiet"], env=env)
    assert imported.exit_code == 0, imported.output
    assert "imported 16, approved 0" in imported.output
    assert "not_shared 4" in imported.output
    assert runner.invoke(app, ["import-folder", str(tree), "-q"], env=env).exit_code == 0

    records = {r.record_id: r for r in load_records(storage, "feedback")}
    assert len(records) == 16
    assert all(r.needs_review and r.license == "shared-by-user" for r in records.values())
    assert records["feedback-fb-0"].species == "boletus_edulis"  # confirmed prediction
    assert records["feedback-fb-1"].species == "imleria_badia"  # corrected label
    stored = Image.open(io.BytesIO(storage.read_bytes(records["feedback-fb-1"].image_key)))
    assert 0x8825 not in stored.getexif()  # GPS stripped

    built = runner.invoke(app, ["build", "--quiet"], env=env)
    assert built.exit_code == 0, built.output
    version_id = built.output.strip().splitlines()[-1]
    rows = read_manifest(storage, version_id)
    feedback_rows = [r for r in rows if r.source == "feedback"]
    assert len(feedback_rows) == 16
    assert {r.split for r in feedback_rows} == {"train"}
    assert {r.split for r in rows if r.source == "folder"} == {"train", "val", "test"}

    # A reviewer approves two photos: their records change, so does the version.
    review = tmp_path / "approved.txt"
    review.write_text("# reviewed by hand\nfb-1\nfb-2  # clear photo\n")
    approved = runner.invoke(app, ["import-feedback", "--review-file", str(review), "-q"], env=env)
    assert approved.exit_code == 0, approved.output
    assert "imported 0, approved 2, already imported 14" in approved.output
    records = {r.record_id: r for r in load_records(storage, "feedback")}
    assert [k for k, r in records.items() if not r.needs_review] == [
        "feedback-fb-1",
        "feedback-fb-2",
    ]
    rebuilt = runner.invoke(app, ["build", "-q"], env=env)
    assert rebuilt.output.strip().splitlines()[-1] != version_id

    listed = runner.invoke(app, ["list"], env=env)
    assert listed.exit_code == 0
    assert version_id in listed.output
    assert "56 photos" in listed.output


def test_build_prints_the_same_id_twice_and_list_shows_it(
    tmp_path: Path, storage: LocalStorage, make_jpeg: MakeJpeg
) -> None:
    tree = tmp_path / "tree"
    for i in range(12):
        path = tree / "Cantharellus cibarius" / f"{i}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(make_jpeg(i))
    runner = CliRunner()
    env = {"MUSHROOM_STORAGE_URI": str(storage.root)}
    assert runner.invoke(app, ["import-folder", str(tree), "-q"], env=env).exit_code == 0
    first = runner.invoke(app, ["build", "-q"], env=env)
    second = runner.invoke(app, ["build", "-q"], env=env)
    assert first.exit_code == second.exit_code == 0
    version_id = first.output.strip().splitlines()[-1]
    assert version_id.startswith("ds-")
    assert second.output.strip().splitlines()[-1] == version_id
    assert "existing version, nothing written" in second.output
    assert "cantharellus_cibarius\ttrain 8\tval 2\ttest 2\ttotal 12" in first.output
    listed = runner.invoke(app, ["list"], env=env)
    assert listed.output.count(version_id) == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["build"], "nothing collected"),
        (
            ["inat", "--species", "boletus_edulis,toadstool"],
            "not in the species catalog: toadstool",
        ),
    ],
)
def test_errors_are_clear(storage: LocalStorage, args: list[str], message: str) -> None:
    result = CliRunner().invoke(app, args, env={"MUSHROOM_STORAGE_URI": str(storage.root)})
    assert result.exit_code != 0
    assert message in result.output
