"""The field step: with a field data root the gate gets the exported bundle with its verdict
thresholds tuned, and its numbers measured, on field validation photos; without one the
exported bundle goes on to the gate unchanged."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from mushroom_training_testkit import FieldWorld, write_field_world

from mushroom_common.registry import ModelRegistry
from mushroom_pipeline.config import Settings
from mushroom_pipeline.definition import STEPS_BY_NAME, StepContext, Values, execute, step_inputs
from mushroom_pipeline.steps import StepCache
from mushroom_training.promotion import FIELD_RULE_METRICS

pytestmark = pytest.mark.slow

MODEL_NAME = "field-step"


@pytest.fixture
def world(tmp_path: Path) -> FieldWorld:
    """The field world's bundle in the registry, as the export step leaves it."""
    world = write_field_world(tmp_path, name=MODEL_NAME)
    ModelRegistry(world.storage).publish(world.bundle_dir)
    return world


def _context(world: FieldWorld, settings: Settings | None = None) -> StepContext:
    return StepContext(
        world.storage, settings or Settings(), world.storage.root / "runs", "test-code", "pytest"
    )


def _exported(world: FieldWorld) -> Values:
    return {"name": MODEL_NAME, "version": world.metadata.version}


def _promote_inputs(world: FieldWorld, field_outputs: Values) -> Values:
    upstream = {"export": _exported(world), "field": field_outputs}
    return step_inputs(STEPS_BY_NAME["promote"], {"force_promote": False}, upstream)


def test_without_a_field_data_root_the_exported_bundle_goes_on_unchanged(
    world: FieldWorld, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    outcome = execute(
        STEPS_BY_NAME["field"],
        _context(world),
        {**_exported(world), "field_data_root": ""},
        StepCache(world.storage, "run-1"),
    )
    assert outcome.status == "skipped"
    assert outcome.outputs == {
        "candidate_version": world.metadata.version,
        "field_bundle": None,
        "field_metrics": {},
    }
    assert "goes to the gate unchanged" in caplog.text
    # Nothing written: no step record, no new bundle.
    assert world.storage.list("pipelines/steps/field/") == []
    assert ModelRegistry(world.storage).versions(MODEL_NAME) == [world.metadata.version]
    assert _promote_inputs(world, outcome.outputs)["candidate_version"] == world.metadata.version


def test_with_a_field_data_root_the_gate_judges_the_field_tuned_bundle(
    world: FieldWorld,
) -> None:
    step = STEPS_BY_NAME["field"]
    # The data root from the settings (PIPELINE_FIELD_DATA_ROOT) ...
    tuned_settings = Settings(field_data_root=world.data_root)
    first = execute(
        step,
        _context(world, tuned_settings),
        {**_exported(world), "field_data_root": ""},
        StepCache(world.storage, "run-1"),
    )
    assert first.status == "done"
    version = first.outputs["candidate_version"]
    assert version != world.metadata.version
    assert first.outputs["field_bundle"] == f"{MODEL_NAME}/{version}"
    registry = ModelRegistry(world.storage)
    tuned = registry.metadata(MODEL_NAME, version)
    # The same model, calibration kept (only the thresholds are tuned), measured on both sides.
    assert tuned.parent_run_id == world.metadata.tracking_run_id
    assert tuned.temperature == world.metadata.temperature
    assert tuned.metrics["field_val_photos"] == 12
    assert tuned.metrics["photos"] == 18
    assert first.outputs["field_metrics"] == {
        k: v for k, v in tuned.metrics.items() if k.startswith("field_")
    }
    # ... or the parameter: the same photos give the same key, so the record is reused.
    again = execute(
        step,
        _context(world),
        {**_exported(world), "field_data_root": str(world.data_root)},
        StepCache(world.storage, "run-2"),
    )
    assert (again.status, again.outputs) == ("skipped", first.outputs)
    assert registry.versions(MODEL_NAME) == sorted([world.metadata.version, version])

    # The gate reads the field-validation numbers of the bundle the field step wrote. (Forced:
    # the model tests run the detector on the development photos, which a colour model fails
    # when they are there; what the gate compared is recorded either way.)
    decision = execute(
        STEPS_BY_NAME["promote"],
        _context(world),
        {**_promote_inputs(world, first.outputs), "force_promote": True},
        StepCache(world.storage, "run-1"),
    )
    assert decision.outputs["candidate"] == f"{MODEL_NAME}/{version}"
    assert decision.outputs["champion"] == version
    assert set(FIELD_RULE_METRICS) <= set(decision.outputs["metrics"])
    assert {k: decision.outputs["metrics"][k] for k in FIELD_RULE_METRICS} == {
        k: tuned.metrics[k] for k in FIELD_RULE_METRICS
    }


def test_a_field_data_root_without_field_folders_stops_the_step(
    world: FieldWorld, tmp_path: Path
) -> None:
    from mushroom_pipeline.collect import PipelineError

    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(PipelineError, match="holds none of"):
        execute(
            STEPS_BY_NAME["field"],
            _context(world),
            {**_exported(world), "field_data_root": str(empty)},
            StepCache(world.storage, "run-1"),
        )
