"""`mushroom-train field-tune` and `field-head` on a real bundle: field-tuned thresholds and the
in-source and field numbers, side by side in metadata and report."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from mushroom_training_testkit import FieldWorld, write_field_world
from typer.testing import CliRunner

from mushroom_common.bundle import InferenceView, read_metadata
from mushroom_training.cli import app

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> FieldWorld:
    return write_field_world(tmp_path_factory.mktemp("field-world"))


def _invoke(world: FieldWorld, *args: str) -> None:
    common = ["--data-root", str(world.data_root), "--storage", str(world.storage.root)]
    result = CliRunner().invoke(app, [*args, *common])
    assert result.exit_code == 0, f"{result.output}\n{result.exception!r}"


def test_field_tune_keeps_the_model_and_tunes_its_rules_on_field_validation(
    world: FieldWorld, tmp_path: Path
) -> None:
    target = tmp_path / "tuned"
    _invoke(world, "field-tune", str(world.bundle_dir), str(target), "--keep-calibration")
    tuned = read_metadata(target)
    source = world.metadata
    assert tuned.name == source.name
    assert tuned.version.endswith("-field")
    assert tuned.dataset_version == source.dataset_version
    # The source's own head: the same model file, one view, the source's temperature.
    model = source.variant().path
    assert (target / model).read_bytes() == (world.bundle_dir / model).read_bytes()
    assert tuned.decision_rules.test_time_views == [InferenceView.ORIGINAL]
    assert tuned.temperature == source.temperature
    # Two field photos in three of val and test are field validation and field test; the
    # field test also holds the three field-extra/ photos of a known species.
    assert tuned.metrics["field_val_photos"] == 12
    assert tuned.metrics["field_photos"] == 12 + 3
    assert tuned.metrics["photos"] == 18
    assert {"field_val_top1", "field_val_toxic_answered_dangerous", "top1"} <= set(tuned.metrics)
    # The thresholds were tuned (and shipped): no dangerous field-val photo answered edible.
    report = json.loads((target / "report.json").read_text("utf-8"))["field"]
    rules = report["field_tuned_rules"]
    assert rules["shipped"] is True
    assert tuned.decision_rules.deadly_threshold == rules["deadly_threshold"]
    assert tuned.metrics["field_val_dangerous_answered_edible"] == 0
    assert "its own species head" in report["note"]
    assert (target / "rules.json").is_file()
    # The mushroom score 'edible' needs: chosen on the decision sets, shipped, sent to the phone,
    # and no higher than any field-val photo still answered edible with the right species.
    score = rules["edible_mushroom_score"]
    assert tuned.decision_rules.edible_mushroom_score == score
    phone = json.loads((target / "rules.json").read_text("utf-8"))["rules"]
    assert phone["edible_mushroom_score"] == score
    if score is not None:
        assert tuned.mushroom_detector is not None
        assert tuned.mushroom_detector.threshold <= score <= 1


def test_field_head_with_a_served_head_file_writes_the_same_rules(
    world: FieldWorld, tmp_path: Path
) -> None:
    marker = tmp_path / "served_head.npz"
    np.savez(
        marker,
        weights=np.zeros((1, 1)),
        bias=np.zeros(1),
        mirror_view=False,
        served_head=True,
        logit_range=np.zeros(2),
    )
    _invoke(world, "field-head", str(world.bundle_dir), str(marker), str(tmp_path / "head"))
    _invoke(world, "field-tune", str(world.bundle_dir), str(tmp_path / "tune"))
    by_head, by_tune = read_metadata(tmp_path / "head"), read_metadata(tmp_path / "tune")
    assert by_head.decision_rules == by_tune.decision_rules
    assert by_head.metrics == by_tune.metrics
    assert by_head.temperature == pytest.approx(by_tune.temperature)


def test_field_tune_retunes_the_detector_to_a_field_false_rejection(
    world: FieldWorld, tmp_path: Path
) -> None:
    target = tmp_path / "detector"
    _invoke(
        world,
        "field-tune",
        str(world.bundle_dir),
        str(target),
        "--keep-calibration",
        "--detector-false-rejection",
        "0.2",
    )
    source, tuned = world.metadata.mushroom_detector, read_metadata(target).mushroom_detector
    assert source is not None
    assert tuned is not None
    # The threshold now turns away at most a fifth of the field-val and in-source val photos
    # (the lower of the two quantiles); the rate recorded is the one on the field test.
    assert tuned.threshold != source.threshold
    assert tuned.false_rejection_rate is not None
    assert 0 <= tuned.false_rejection_rate <= 1
    rules = json.loads((target / "rules.json").read_text("utf-8"))
    assert rules["rules"]["detector_threshold"] == tuned.threshold
