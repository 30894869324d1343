"""The Vertex AI (KFP v2) pipeline compiles to its YAML spec with the service images (no cloud)."""

from __future__ import annotations

import itertools
import os
import subprocess
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from mushroom_pipeline.cli import app

# kfp is the package's optional `kfp` extra: without it there is nothing to compile.
kfp_pipeline = pytest.importorskip("mushroom_pipeline.kfp_pipeline")
BUILD_SCRIPT = kfp_pipeline.BUILD_SCRIPT
COLLECT_SCRIPT = kfp_pipeline.COLLECT_SCRIPT
EVALUATE_SCRIPT = kfp_pipeline.EVALUATE_SCRIPT
EXPORT_SCRIPT = kfp_pipeline.EXPORT_SCRIPT
PROMOTE_SCRIPT = kfp_pipeline.PROMOTE_SCRIPT
TRAIN_SCRIPT = kfp_pipeline.TRAIN_SCRIPT

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


FAKE_CLI = """#!/bin/sh
echo "$(basename "$0") $*" >> "$CALLS"
case "$(basename "$0") $1" in
  "mushroom-collect build") echo "summary line"; echo "ds-0123456789abcdef";;
  "mushroom-train train") echo "run 0f1e2d3c $TRAIN_RUNS_DIR/0f1e2d3c";;
  "mushroom-train export") echo "bundle mushroom 20260901-120000-0f1e2d3c gs://b/models/x";;
  "mushroom-train evaluate") echo '{"int8": {"top1": 0.9}}';;
  "mushroom-train promote") echo "champion mushroom 20260901-120000-0f1e2d3c: no champion yet";;
esac
"""


@pytest.fixture
def fake_clis(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """mushroom-collect and mushroom-train stand-ins on PATH that log their arguments."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in ("mushroom-collect", "mushroom-train"):
        path = bin_dir / name
        path.write_text(FAKE_CLI, "utf-8")
        path.chmod(0o755)
    calls = tmp_path / "calls.txt"
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    monkeypatch.setenv("CALLS", str(calls))
    return calls


def _sh(script: str, *args: object) -> None:
    subprocess.run(["sh", "-c", script, *(str(a) for a in args)], check=True, timeout=30)


def test_component_scripts_pass_outputs_along(fake_clis: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    store, runs = "gs://bucket/data", "/gcs/bucket/runs"
    _sh(COLLECT_SCRIPT, store, runs, "/gcs/a /gcs/b", "boletus_edulis", 5, "true", "", out)
    _sh(BUILD_SCRIPT, store, runs, "collected", out)
    assert out.read_text().strip() == "ds-0123456789abcdef"
    _sh(TRAIN_SCRIPT, store, runs, "/app/demo.yaml", "ds-0123456789abcdef", 3, "mushroom", out)
    assert out.read_text().strip() == "/gcs/bucket/runs/0f1e2d3c"
    _sh(EXPORT_SCRIPT, store, runs, "/gcs/bucket/runs/0f1e2d3c", out)
    assert out.read_text().strip() == "mushroom/20260901-120000-0f1e2d3c"
    _sh(EVALUATE_SCRIPT, store, runs, "mushroom/20260901-120000-0f1e2d3c", out)
    _sh(PROMOTE_SCRIPT, store, runs, "mushroom/20260901-120000-0f1e2d3c", out, "metrics")
    assert out.read_text().startswith("champion mushroom")
    assert fake_clis.read_text().splitlines() == [
        "mushroom-collect import-folder /gcs/a --quiet",
        "mushroom-collect import-folder /gcs/b --quiet",
        "mushroom-collect inat --species boletus_edulis --max-per-species 5 --quiet",
        "mushroom-collect import-feedback --quiet",
        "mushroom-collect list",
        "mushroom-collect build --quiet",
        "mushroom-train train -c /app/demo.yaml -s data.dataset_version=ds-0123456789abcdef "
        "-s training.phase1_epochs=3 -s student.epochs=3 -s export.name=mushroom",
        "mushroom-train export /gcs/bucket/runs/0f1e2d3c",
        "mushroom-train evaluate mushroom 20260901-120000-0f1e2d3c --split test",
        "mushroom-train promote mushroom 20260901-120000-0f1e2d3c --reason vertex ai pipeline",
    ]


def test_a_failing_cli_fails_its_component(fake_clis: Path, tmp_path: Path) -> None:
    failing = tmp_path / "bin" / "mushroom-train"
    failing.write_text("#!/bin/sh\necho 'run x y'\nexit 3\n", "utf-8")
    with pytest.raises(subprocess.CalledProcessError):
        _sh(TRAIN_SCRIPT, "s", "r", "c.yaml", "ds-1", 0, "", tmp_path / "out")
