"""The Vertex AI (KFP v2) pipeline is generated from definition.STEPS and runs the same steps.

The compiled spec is checked against the step list for every step (command, typed inputs and
outputs, where each input comes from, caching), then executed here the way KFP's launcher does
(placeholders filled in, output parameter files read back by their declared types), and a local
`mushroom-pipeline run` with the same arguments finds every step already done: same keys,
same outputs.
"""

from __future__ import annotations

import itertools
import json
import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml
from mushroom_pipeline_testkit import TINY_OVERRIDES, write_photo_tree
from typer.testing import CliRunner

from mushroom_common.storage import LocalStorage
from mushroom_pipeline.cli import app
from mushroom_pipeline.definition import PARAMS, STEPS, Step, input_kind

# kfp is the package's optional `kfp` extra: without it there is nothing to compile.
kfp_pipeline = pytest.importorskip("mushroom_pipeline.kfp_pipeline")

IMAGE = "registry.example/mushroom-trainer:1.2.3"
KFP_TYPES = {
    "str": "STRING",
    "int": "NUMBER_INTEGER",
    "bool": "BOOLEAN",
    "list": "LIST",
    "dict": "STRUCT",
}
PLACEHOLDER = re.compile(r"\{\{\$\.(inputs|outputs)\.parameters\['(\w+)'\](\.output_file)?\}\}")


@pytest.fixture(scope="module")
def spec(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    output = tmp_path_factory.mktemp("kfp") / "pipeline.yaml"
    result = CliRunner().invoke(app, ["compile-kfp", str(output), "--image", IMAGE])
    assert result.exit_code == 0, result.output
    document: dict[str, Any] = yaml.safe_load(output.read_text("utf-8"))
    return document


def _pairs(args: list[str], flag: str) -> dict[str, str]:
    """NAME -> VALUE of every `flag NAME=VALUE` in a component's arguments."""
    return dict(value.split("=", 1) for option, value in itertools.pairwise(args) if option == flag)


def test_the_pipeline_takes_every_parameter_with_its_type_and_default(
    spec: dict[str, Any],
) -> None:
    assert spec["pipelineInfo"]["name"] == kfp_pipeline.PIPELINE_NAME
    inputs = spec["root"]["inputDefinitions"]["parameters"]
    assert set(inputs) == {*kfp_pipeline.CONTEXT_PARAMS, *(p.name for p in PARAMS)}
    for name in kfp_pipeline.CONTEXT_PARAMS:
        assert inputs[name] == {"parameterType": "STRING"}
    for param in PARAMS:
        assert inputs[param.name]["parameterType"] == KFP_TYPES[param.kind], param.name
        assert inputs[param.name]["defaultValue"] == param.default, param.name
    assert sorted(spec["root"]["dag"]["tasks"]) == sorted(s.name for s in STEPS)


@pytest.mark.parametrize("step", STEPS, ids=lambda s: s.name)
def test_each_component_runs_its_step_with_the_declared_inputs_and_outputs(
    spec: dict[str, Any], step: Step
) -> None:
    task = spec["root"]["dag"]["tasks"][step.name]
    component = spec["components"][task["componentRef"]["name"]]
    container = spec["deploymentSpec"]["executors"][component["executorLabel"]]["container"]
    assert container["image"] == IMAGE
    assert container["command"] == ["mushroom-pipeline", "step", step.name]
    args = container["args"]
    assert args[:4] == [
        "--storage",
        "{{$.inputs.parameters['storage_uri']}}",
        "--runs-dir",
        "{{$.inputs.parameters['runs_dir']}}",
    ]
    # Each declared input is passed as itself, each declared output goes to its KFP file.
    assert _pairs(args, "--input") == {
        i.name: f"{{{{$.inputs.parameters['{i.name}']}}}}" for i in step.inputs
    }
    assert _pairs(args, "--output") == {
        o.name: f"{{{{$.outputs.parameters['{o.name}'].output_file}}}}" for o in step.outputs
    }
    declared_inputs = component["inputDefinitions"]["parameters"]
    assert {n: d["parameterType"] for n, d in declared_inputs.items()} == {
        "storage_uri": "STRING",
        "runs_dir": "STRING",
        **{i.name: KFP_TYPES[input_kind(step, i)] for i in step.inputs},
    }
    declared_outputs = component.get("outputDefinitions", {}).get("parameters", {})
    assert {n: d["parameterType"] for n, d in declared_outputs.items()} == {
        o.name: KFP_TYPES[o.kind] for o in step.outputs
    }
    # Parameters feed the inputs of their name; every other input is an earlier step's output.
    sources = task["inputs"]["parameters"]
    for item in step.inputs:
        if item.source == "params":
            assert sources[item.name] == {"componentInputParameter": item.name}
        else:
            assert sources[item.name] == {
                "taskOutputParameter": {
                    "outputParameterKey": item.name,
                    "producerTask": item.source,
                }
            }
    index = [s.name for s in STEPS].index(step.name)
    if index:
        assert STEPS[index - 1].name in task["dependentTasks"]
    assert task["cachingOptions"] == ({"enableCache": True} if step.pure else {})
    resources = container.get("resources", {})
    assert resources.get("cpuLimit") == (float(step.cpu_limit) if step.cpu_limit else None)


def _render(template: str, inputs: dict[str, Any], outputs: dict[str, Path]) -> str:
    """A placeholder filled in as KFP's launcher does: text as is, other values as JSON."""

    def value(match: re.Match[str]) -> str:
        kind, name, is_file = match.groups()
        if kind == "outputs":
            assert is_file, template
            return str(outputs[name])
        given = inputs[name]
        return given if isinstance(given, str) else json.dumps(given)

    return PLACEHOLDER.sub(value, template).replace("{{$.pipeline_job_name}}", "kfp-emulated")


def _read_output(path: Path, parameter_type: str) -> Any:
    """An output parameter file read back as KFP's launcher reads it for its declared type."""
    text = path.read_text("utf-8")
    if parameter_type == "STRING":
        return text
    if parameter_type == "BOOLEAN":
        return {"true": True, "false": False}[text]
    value = json.loads(text)
    if parameter_type == "NUMBER_INTEGER":
        assert isinstance(value, int)
    return value


def _run_like_kfp(spec: dict[str, Any], arguments: dict[str, Any], work: Path) -> dict[str, Any]:
    """Execute every task of the compiled spec in order; return each step's outputs."""
    defaults = {
        name: d.get("defaultValue")
        for name, d in spec["root"]["inputDefinitions"]["parameters"].items()
    }
    params = {**defaults, **arguments}
    produced: dict[str, dict[str, Any]] = {}
    for step in STEPS:
        task = spec["root"]["dag"]["tasks"][step.name]
        component = spec["components"][task["componentRef"]["name"]]
        container = spec["deploymentSpec"]["executors"][component["executorLabel"]]["container"]
        inputs = {}
        for name, source in task["inputs"]["parameters"].items():
            if "componentInputParameter" in source:
                inputs[name] = params[source["componentInputParameter"]]
            else:
                producer = source["taskOutputParameter"]
                inputs[name] = produced[producer["producerTask"]][producer["outputParameterKey"]]
        declared = component.get("outputDefinitions", {}).get("parameters", {})
        files = {name: work / step.name / name for name in declared}
        command = [
            _render(part, inputs, files) for part in container["command"] + container["args"]
        ]
        assert command[0] == "mushroom-pipeline"
        result = CliRunner().invoke(app, command[1:])
        assert result.exit_code == 0, f"{shlex.join(command)}\n{result.output}"
        produced[step.name] = {
            name: _read_output(files[name], d["parameterType"]) for name, d in declared.items()
        }
    return produced


@pytest.mark.slow
def test_the_compiled_pipeline_runs_the_same_steps_as_the_local_runner(
    spec: dict[str, Any],
    tmp_path: Path,
    tiny_config: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PIPELINE_CODE_VERSION", "kfp-emulated")
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "2")
    photos = write_photo_tree(tmp_path / "photos", per_species=8)
    store = tmp_path / "store"
    runs = tmp_path / "runs"
    overrides = [*TINY_OVERRIDES, "training.phase2_epochs=2"]
    produced = _run_like_kfp(
        spec,
        {
            "storage_uri": str(store),
            "runs_dir": str(runs),
            "import_folders": [str(photos)],
            "config": str(tiny_config),
            "overrides": overrides,
            "epochs": 1,
            "model_name": "kfp-test",
        },
        tmp_path / "kfp-outputs",
    )
    assert produced["build"]["dataset_version"].startswith("ds-")
    assert produced["build"]["feedback_per_split"] == {"train": 0, "val": 0, "test": 0}
    # --epochs caps both training phases and the distillation alike.
    assert produced["train"]["phase_epochs"] == {
        "training.phase1_epochs": 1,
        "training.phase2_epochs": 1,
        "student.epochs": 1,
    }
    assert produced["train"]["run_dir"].startswith(str(runs))
    assert produced["promote"]["champion"] == produced["export"]["version"]
    assert produced["reload"] == {"serving": "", "reloaded": False}

    monkeypatch.setenv("TRAIN_RUNS_DIR", str(runs))
    local = CliRunner().invoke(
        app,
        [
            "run",
            "--storage",
            str(store),
            "--import-folder",
            str(photos),
            "--config",
            str(tiny_config),
            *(arg for item in overrides for arg in ("--override", item)),
            "--epochs",
            "1",
            "--model-name",
            "kfp-test",
        ],
    )
    assert local.exit_code == 0, local.output
    lines = [line for line in local.stdout.splitlines() if not line.startswith("report:")]
    assert [line.split()[:2] for line in lines] == [[s.name, "skipped"] for s in STEPS]
    run_id = local.stdout.splitlines()[-1].rsplit("/", 2)[-2]
    run = json.loads(LocalStorage(store).read_text(f"pipelines/runs/{run_id}/run.json"))
    for outcome in run["steps"]:
        expected = produced[outcome["step"]]
        got = {name: ("" if value is None else value) for name, value in outcome["outputs"].items()}
        assert got == expected, outcome["step"]
