"""The Vertex AI (KFP v2) pipeline compiles to its YAML spec with the service images (no cloud)."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from mushroom_pipeline.cli import app

pytest.importorskip("kfp")

STEPS = ["collect", "build", "train", "export", "evaluate", "promote", "reload"]


def test_compile_kfp_writes_a_pipeline_spec_with_every_step(tmp_path: Path) -> None:
    output = tmp_path / "pipeline.yaml"
    result = CliRunner().invoke(
        app,
        [
            "compile-kfp",
            str(output),
            "--collector-image",
            "registry.example/collector:1.2.3",
            "--training-image",
            "registry.example/training:1.2.3",
        ],
    )
    assert result.exit_code == 0, result.output
    spec = yaml.safe_load(output.read_text("utf-8"))
    assert spec["pipelineInfo"]["name"] == "mushroom-id-train-and-promote"
    tasks = spec["root"]["dag"]["tasks"]
    assert sorted(tasks) == sorted(STEPS)
    executors = spec["deploymentSpec"]["executors"]
    images = {name.removeprefix("exec-"): e["container"]["image"] for name, e in executors.items()}
    assert images["collect"] == images["build"] == "registry.example/collector:1.2.3"
    for step in ("train", "export", "evaluate", "promote", "reload"):
        assert images[step] == "registry.example/training:1.2.3"
    # The steps form one chain: each consumes the previous step's output parameter.
    for previous, step in itertools.pairwise(STEPS):
        assert previous in tasks[step].get("dependentTasks", []), step
    assert tasks["train"]["inputs"]["parameters"]["dataset_version"]["taskOutputParameter"] == {
        "outputParameterKey": "dataset_version",
        "producerTask": "build",
    }
    # Collection depends on the world outside the pipeline: never served from KFP's cache.
    assert tasks["collect"]["cachingOptions"] == {}
    assert tasks["train"]["cachingOptions"]["enableCache"] is True
    commands = executors["exec-train"]["container"]["command"]
    assert "mushroom-train train" in commands[-1]
    inputs = spec["root"]["inputDefinitions"]["parameters"]
    assert {"storage_uri", "import_folders", "epochs", "api_url"} <= set(inputs)
