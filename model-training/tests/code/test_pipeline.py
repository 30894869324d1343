"""A tiny model through train, evaluate, export, reload and promote, on a generated dataset."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from typer.testing import CliRunner

from mushroom_common.bundle import read_metadata, verify_bundle
from mushroom_common.catalog import load_catalog
from mushroom_common.registry import ModelRegistry
from mushroom_common.rules_export import RULES_FILE, RulesDocument
from mushroom_common.runtime import BundleRuntime
from mushroom_common.storage import Storage
from mushroom_training.cli import app
from mushroom_training.config import Settings, TrainConfig, load_config
from mushroom_training.data import load_dataset
from mushroom_training.evaluate import evaluate_bundle
from mushroom_training.export import ExportResult, export
from mushroom_training.model import LOGITS, assemble, load_network
from mushroom_training.promotion import PromotionRefusedError, pack_bundle, promote, run_model_tests
from mushroom_training.tracking import search_runs
from mushroom_training.train import WEIGHTS_FILE, TrainResult, read_run, train

CONFIGS = Path(__file__).parents[2] / "configs"


@dataclass
class Trained:
    run: TrainResult
    bundle: ExportResult


@pytest.fixture(scope="module")
def good(storage: Storage, settings: Settings) -> Trained:
    config = load_config(CONFIGS / "tiny.yaml", ["run_name=good"])
    run = train(config, storage=storage, settings=settings, command="pytest good")
    return Trained(run, export(run.run_dir, storage=storage, settings=settings, version="v1-good"))


@pytest.fixture(scope="module")
def bad(
    storage: Storage,
    settings: Settings,
    good: Trained,
    quick_tiny_config: Callable[..., TrainConfig],
) -> Trained:
    """A barely trained model: one phase-1 epoch at a tiny learning rate."""
    config = quick_tiny_config(
        "run_name=bad", "training.phase1_epochs=1", "training.phase1_learning_rate=0.00001"
    )
    run = train(config, storage=storage, settings=settings, command="pytest bad")
    return Trained(run, export(run.run_dir, storage=storage, settings=settings, version="v2-bad"))


def test_training_learns_the_generated_species(good: Trained) -> None:
    info, config = read_run(good.run.run_dir)
    assert info.dataset_version == "ds-synthetic"
    assert info.labels == sorted(info.labels)
    assert good.run.metrics["top1"] >= 0.8
    assert info.test_metrics["ece_scaled"] <= info.test_metrics["ece"] + 0.05
    assert config.run_name == "good"
    assert (good.run.run_dir / "history.json").is_file()


def test_runs_are_tracked_with_params_and_metrics(
    good: Trained, storage: Storage, settings: Settings
) -> None:
    runs = {run.info.run_id: run for run in search_runs(storage, settings)}
    tracked = runs[good.run.run_id]
    assert tracked.info.status == "FINISHED"
    assert tracked.data.params["model.backbone"] == "tiny_cnn"
    assert tracked.data.metrics["test/top1"] == pytest.approx(good.run.metrics["top1"])
    assert tracked.data.tags["bundle"] == "mushroom-classifier/v1-good"
    assert "phase1/loss" in tracked.data.metrics


def test_bundle_metadata_follows_the_contract(
    good: Trained, storage: Storage, tmp_path: Path
) -> None:
    metadata = ModelRegistry(storage).download("mushroom-classifier", "v1-good", tmp_path)
    catalog = load_catalog()
    assert all(label in catalog for label in metadata.labels)
    assert metadata.serving_variant == "int8"
    assert {v.name for v in metadata.variants} == {"float32", "int8", "student_int8", "saved_model"}
    assert metadata.dataset_version == "ds-synthetic"
    assert metadata.command == "pytest good"
    assert metadata.tracking_run_id == good.run.run_id
    assert metadata.metrics["top1"] == metadata.variant().metrics["top1"]
    verify_bundle(tmp_path, metadata)
    report = json.loads((tmp_path / "report.json").read_text())
    assert set(report["variants"]) == {v.name for v in metadata.variants}
    for plot in report["plots"].values():
        assert (tmp_path / plot).stat().st_size > 1000
    assert "## Variants (test split)" in (tmp_path / "report.md").read_text()
    # The phone's rules file names the served model by its hash and uses the bundle's thresholds.
    rules = RulesDocument.model_validate_json((tmp_path / RULES_FILE).read_text())
    assert rules.labels == metadata.labels
    served = next(f for f in metadata.files if f.path == metadata.variant().path)
    assert (rules.model.sha256, rules.model.size_bytes) == (served.sha256, served.size_bytes)
    assert rules.rules.danger_threshold == metadata.decision_rules.danger_threshold


def _test_images(storage: Storage, good: Trained) -> tuple[np.ndarray, np.ndarray]:
    info, config = read_run(good.run.run_dir)
    data = load_dataset(
        storage,
        config.data.model_copy(update={"dataset_version": info.dataset_version}),
        info.labels,
    )
    return data.splits["val"].images, data.splits["test"].images


def test_saved_model_and_float_tflite_agree_with_keras(
    good: Trained, storage: Storage, settings: Settings
) -> None:
    info, config = read_run(good.run.run_dir)
    network = load_network(
        config, len(info.labels), good.run.run_dir / WEIGHTS_FILE, settings.weights_cache_dir
    )
    _, images = _test_images(storage, good)
    keras_model = assemble(network, flip_tta=config.export.flip_tta)
    keras_logits = np.asarray(keras_model.predict(images, verbose=0)[LOGITS])

    reloaded = tf.saved_model.load(str(good.bundle.bundle_dir / "saved_model"))
    saved_logits = reloaded.serve(tf.constant(images))[LOGITS].numpy()
    np.testing.assert_allclose(saved_logits, keras_logits, atol=1e-4)

    bundle_dir = good.bundle.bundle_dir
    tflite = BundleRuntime.for_variant(bundle_dir, good.bundle.metadata, "float32")
    assert tflite.input_size == (32, 32)
    answers = tflite.run_batch(images)
    assert answers.mushroom_scores is None
    np.testing.assert_allclose(answers.logits, keras_logits, atol=1e-4)


def test_int8_takes_raw_pixels_and_agrees_with_float(good: Trained, storage: Storage) -> None:
    bundle_dir, metadata = good.bundle.bundle_dir, good.bundle.metadata
    int8 = BundleRuntime.for_variant(bundle_dir, metadata, "int8")
    val, _ = _test_images(storage, good)
    float32 = BundleRuntime.for_variant(bundle_dir, metadata, "float32")
    float_top1 = float32.run_batch(val).logits.argmax(1)
    int8_top1 = int8.run_batch(val).logits.argmax(1)
    assert np.mean(int8_top1 == float_top1) >= 0.99


def test_evaluate_reproduces_the_recorded_metrics(good: Trained, storage: Storage) -> None:
    """Every metric, calibrated ones included: each variant is scored with its own temperature."""
    results = evaluate_bundle(good.bundle.bundle_dir, storage)
    student = good.bundle.metadata.variant("student_int8")
    assert student.temperature == read_run(good.run.run_dir)[0].student_temperature
    for variant in good.bundle.metadata.variants:
        if variant.format == "tflite":
            recorded = {k: v for k, v in variant.metrics.items() if not k.startswith("latency")}
            assert results[variant.name] == pytest.approx(recorded)


def test_promotion_refuses_a_worse_model_and_keeps_history(
    good: Trained, bad: Trained, storage: Storage
) -> None:
    name = "mushroom-classifier"
    assert bad.bundle.metadata.metrics["macro_f1"] < good.bundle.metadata.metrics["macro_f1"]
    first = promote(storage, name, "v1-good", checks=run_model_tests)  # the model tests pass
    assert first.accepted
    assert first.previous_version is None
    with pytest.raises(PromotionRefusedError) as refused:
        promote(storage, name, "v2-bad")
    assert not refused.value.event.accepted
    assert "macro-F1" in refused.value.event.reason
    registry = ModelRegistry(storage)
    current = registry.champion(name)
    assert current is not None
    assert current.version == "v1-good"
    forced = promote(storage, name, "v2-bad", force=True, reason="pytest")
    assert forced.accepted
    assert forced.forced
    assert registry.champion(name).version == "v2-bad"  # type: ignore[union-attr]  # just promoted
    history = registry.history(name)
    assert [(e.version, e.accepted, e.forced) for e in history] == [
        ("v1-good", True, False),
        ("v2-bad", False, False),
        ("v2-bad", True, True),
    ]


def test_cli_lists_runs_and_bundles_side_by_side(
    good: Trained,
    bad: Trained,
    storage: Storage,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from mushroom_training.config import get_settings

    monkeypatch.setenv("TRAIN_RUNS_DIR", str(settings.runs_dir))
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(app, ["list", "--storage", storage.uri])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    assert good.run.run_id[:8] in result.output
    assert bad.run.run_id[:8] in result.output
    assert "v1-good" in result.output
    assert "v2-bad" in result.output


def test_pack_keeps_chosen_variants_with_valid_hashes(good: Trained, tmp_path: Path) -> None:
    packed = pack_bundle(
        good.bundle.bundle_dir, tmp_path / "demo", ["int8", "float32"], "for tests only"
    )
    assert {v.name for v in packed.variants} == {"int8", "float32"}
    assert not (tmp_path / "demo" / "saved_model").exists()
    assert not (tmp_path / "demo" / "model_student_int8.tflite").exists()
    assert read_metadata(tmp_path / "demo").data_status == "for tests only"
    verify_bundle(tmp_path / "demo", packed)
    with pytest.raises(ValueError, match="serving variant"):
        pack_bundle(good.bundle.bundle_dir, tmp_path / "other", ["float32"])


def test_model_tests_fail_on_a_candidate_whose_model_file_is_broken(
    good: Trained, tmp_path: Path
) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(good.bundle.bundle_dir, broken)
    (broken / good.bundle.metadata.variant().path).write_bytes(b"not a model")
    failure = run_model_tests(broken)
    assert failure is not None
    assert "model tests failed" in failure
