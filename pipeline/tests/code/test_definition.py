"""The one step list: what `execute` enforces for every step, and the `step` command."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest
from mushroom_pipeline_testkit import write_photo_tree
from typer.testing import CliRunner

from mushroom_common.storage import LocalStorage
from mushroom_pipeline import cli
from mushroom_pipeline.collect import PipelineError
from mushroom_pipeline.config import Settings
from mushroom_pipeline.definition import (
    PARAMS,
    STEPS,
    STEPS_BY_NAME,
    Check,
    Output,
    Step,
    StepContext,
    decode,
    encode,
    execute,
)
from mushroom_pipeline.steps import StepCache


def _context(storage: LocalStorage, tmp_path: Path) -> StepContext:
    return StepContext(storage, Settings(), tmp_path / "runs", "test-code", "pytest")


def _counting_step(limit: int) -> Step:
    def count(context: StepContext, inputs: dict[str, Any]) -> dict[str, Any]:
        records = context.storage.list("collected/")
        return {"records": len(records)}

    def at_most(context: StepContext, inputs: dict[str, Any], outputs: dict[str, Any]) -> Any:
        if outputs["records"] > limit:
            raise PipelineError(f"{outputs['records']} records, more than {limit}")
        return {"limit": limit}

    return Step(
        name="count",
        description="Count the collected records.",
        inputs=(),
        outputs=(Output("records", "int"), Output("limit_check", "dict")),
        run=count,
        key=lambda context, inputs: {"records": context.storage.list("collected/")},
        checks=(Check("at_most", "no more records than the limit", at_most, "limit_check"),),
        summary=lambda o: str(o["records"]),
    )


def test_the_cli_names_the_steps_of_the_definition() -> None:
    assert tuple(s.name for s in STEPS) == cli.STEPS
    assert cli.STEPS[:-1] == cli.STOPPABLE


def test_every_input_has_one_source_and_names_are_unique_per_step() -> None:
    params = {p.name for p in PARAMS}
    for index, step in enumerate(STEPS):
        earlier = {s.name: s for s in STEPS[:index]}
        for item in step.inputs:
            if item.source == "params":
                assert item.name in params, (step.name, item.name)
            else:
                assert item.name in {o.name for o in earlier[item.source].outputs}
        names = [i.name for i in step.inputs] + [o.name for o in step.outputs]
        assert len(names) == len(set(names)), step.name
        assert {c.output for c in step.checks} <= {o.name for o in step.outputs}


def test_execute_records_check_results_and_a_failed_check_leaves_no_record(
    tmp_path: Path,
) -> None:
    storage = LocalStorage(tmp_path / "store")
    storage.write_text("collected/a.json", "{}")
    context = _context(storage, tmp_path)
    done = execute(_counting_step(1), context, {}, StepCache(storage, "run-1"))
    assert (done.status, done.outputs) == ("done", {"records": 1, "limit_check": {"limit": 1}})
    storage.write_text("collected/b.json", "{}")
    with pytest.raises(PipelineError, match="2 records, more than 1"):
        execute(_counting_step(1), context, {}, StepCache(storage, "run-2"))
    assert len(storage.list("pipelines/steps/count/")) == 1


def test_execute_refuses_undeclared_inputs_and_outputs(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path / "store")
    context = _context(storage, tmp_path)
    with pytest.raises(PipelineError, match="takes"):
        execute(_counting_step(5), context, {"extra": 1}, StepCache(storage, "run-1"))
    step = _counting_step(5)
    wrong = dataclasses.replace(step, checks=())
    with pytest.raises(PipelineError, match="declared"):
        execute(wrong, context, {}, StepCache(storage, "run-1"))


@pytest.mark.parametrize(
    ("value", "kind"),
    [
        ("ds-1", "str"),
        (3, "int"),
        (True, "bool"),
        (False, "bool"),
        (["a b"], "list"),
        ({"x": 1}, "dict"),
    ],
)
def test_values_cross_process_boundaries_unchanged(value: Any, kind: Any) -> None:
    assert decode(encode(value, kind), kind) == value


def test_decode_says_what_is_wrong() -> None:
    with pytest.raises(ValueError, match="not a whole number"):
        decode("2.5", "int")
    with pytest.raises(ValueError, match="not true or false"):
        decode("maybe", "bool")
    with pytest.raises(ValueError, match="not a JSON array"):
        decode('{"a": 1}', "list")
    assert decode("", "str", nullable=True) is None


def test_epochs_cap_both_training_phases_and_the_distillation(
    tmp_path: Path, tiny_config: Path
) -> None:
    train = STEPS_BY_NAME["train"]
    (check,) = train.checks
    context = _context(LocalStorage(tmp_path / "store"), tmp_path)
    inputs = {
        "dataset_version": "ds-0",
        "config": str(tiny_config),
        "overrides": [],
        "epochs": 2,
        "model_name": "",
    }
    assert check.run(context, inputs, {}) == {
        "training.phase1_epochs": 2,
        "training.phase2_epochs": 2,
        "student.epochs": 2,
    }
    # A phase that is off stays off; without a cap the config's epochs stand.
    off = {**inputs, "overrides": ["training.phase2_epochs=0"]}
    assert check.run(context, off, {})["training.phase2_epochs"] == 0
    assert check.run(context, {**inputs, "epochs": 0}, {})["training.phase1_epochs"] == 30


def test_the_step_command_runs_one_step_with_typed_inputs_and_outputs(tmp_path: Path) -> None:
    photos = write_photo_tree(tmp_path / "photos", per_species=3)
    store = tmp_path / "store"
    runner = CliRunner()
    out = tmp_path / "out"
    collected = runner.invoke(
        cli.app,
        [
            "step",
            "collect",
            "--storage",
            str(store),
            "--input",
            f"import_folders={json.dumps([str(photos)])}",
            "--output",
            f"records={out / 'records'}",
            "--output",
            f"sources={out / 'sources'}",
        ],
    )
    assert collected.exit_code == 0, collected.output
    outputs = json.loads(collected.stdout)
    assert outputs["records"] == 9
    assert (out / "records").read_text() == "9"
    assert json.loads((out / "sources").read_text()) == outputs["sources"]
    built = runner.invoke(
        cli.app,
        ["step", "build", "--storage", str(store), "--output", f"dataset_version={out / 'v'}"],
    )
    assert built.exit_code == 0, built.output
    assert (out / "v").read_text() == json.loads(built.stdout)["dataset_version"]
    assert json.loads(built.stdout)["feedback_per_split"] == {"train": 0, "val": 0, "test": 0}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["step", "deploy"], "no step 'deploy'"),
        (["step", "collect", "--input", "max_per_species=many"], "max_per_species"),
        (["step", "collect", "--input", "colour=red"], "has no input 'colour'"),
        (["step", "export"], "needs --input run_id"),
        (["step", "build", "--output", "nothing=/tmp/x"], "has no output nothing"),
        (["step", "build", "--input", "oops"], "takes NAME=VALUE"),
    ],
)
def test_the_step_command_refuses_bad_arguments_clearly(
    args: list[str], message: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    result = CliRunner().invoke(cli.app, [*args, "--storage", str(tmp_path)])
    assert result.exit_code == 2, result.output
    assert message in caplog.text
