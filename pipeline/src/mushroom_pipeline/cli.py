"""`mushroom-pipeline`: photos to a promoted, served model; drift monitoring; the KFP spec.

Standard output carries results (the pipeline summary, the drift table); logs go to standard error.
"""

from __future__ import annotations

import json
import logging
import os
import shlex
import sys
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer

from mushroom_common.commands import StorageOption, command_app, open_storage_or_exit
from mushroom_common.storage import StorageError
from mushroom_pipeline.config import get_settings

app = command_app(
    "mushroom-pipeline",
    "Collect -> build -> train -> export -> evaluate -> field -> promote -> reload, "
    "content-addressed; "
    "drift monitoring; the same steps as a Vertex AI (KFP v2) pipeline.",
)
logger = logging.getLogger("mushroom_pipeline")

# Every step but the last (cli.py imports no step code at start-up: the names are spelled out;
# tests/code/test_definition.py checks them against definition.STEPS).
STEPS = ("collect", "build", "train", "export", "evaluate", "field", "promote", "reload")
STOPPABLE = STEPS[:-1]


def _setup_logging() -> None:
    root = logging.getLogger()
    if not root.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S")
        )
        root.addHandler(handler)
    root.setLevel(logging.INFO)
    for noisy in ("httpx", "alembic", "mlflow", "absl", "tensorflow", "h5py"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _command_line(context: typer.Context, secret: tuple[str, ...] = ("api_token",)) -> str:
    """The current command with its options (secrets left out), for the bundle's metadata."""
    words = ["mushroom-pipeline", context.info_name or ""]
    for name, value in context.params.items():
        if name in secret or value in (None, False, [], ()):
            continue
        flag = "--" + name.replace("_", "-")
        if name == "storage_uri":
            flag = "--storage"
        for item in value if isinstance(value, list | tuple) else [value]:
            words += [flag] if item is True else [flag, str(item)]
    return shlex.join(words)


@app.command("run")
def run_command(
    context: typer.Context,
    import_folder: Annotated[
        list[Path] | None,
        typer.Option(
            "--import-folder",
            help="class-folder tree to import (repeatable): PATH/<species>/*.jpg or "
            "PATH/<split>/<species>/*.jpg",
            exists=True,
            file_okay=False,
        ),
    ] = None,
    species: Annotated[
        str | None,
        typer.Option(help="collect these species from iNaturalist (comma-separated names)"),
    ] = None,
    max_per_species: Annotated[
        int | None,
        typer.Option(help="collect from iNaturalist, at most this many photos per species", min=1),
    ] = None,
    with_feedback: Annotated[
        bool,
        typer.Option("--with-feedback", help="import the API's shared feedback photos first"),
    ] = False,
    config: Annotated[
        Path | None,
        typer.Option(
            help="training config YAML (default PIPELINE_TRAIN_CONFIG, else "
            "model-training/configs/demo.yaml when present, else the training defaults)",
            exists=True,
            dir_okay=False,
        ),
    ] = None,
    override: Annotated[
        list[str] | None,
        typer.Option(help="training config override section.key=value (repeatable)"),
    ] = None,
    epochs: Annotated[
        int | None,
        typer.Option(
            help="cap every training phase (head, fine-tune, distillation) at N epochs", min=1
        ),
    ] = None,
    model_name: Annotated[
        str | None,
        typer.Option(
            help="registry name of the bundle (default PIPELINE_MODEL_NAME or the config's)"
        ),
    ] = None,
    field_data_root: Annotated[
        Path | None,
        typer.Option(
            help="shared data folder with the field photos (web-species/, nordic-field/, "
            "field-extra/): tune the verdict thresholds on its field validation photos before "
            "the gate (default PIPELINE_FIELD_DATA_ROOT, else no field step)",
            exists=True,
            file_okay=False,
        ),
    ] = None,
    force_promote: Annotated[
        bool,
        typer.Option("--force-promote", help="promote even when the gate refuses (logged)"),
    ] = False,
    api_url: Annotated[
        str | None,
        typer.Option(
            help="base URL of a running API to reload afterwards (default PIPELINE_API_URL)"
        ),
    ] = None,
    api_token: Annotated[
        str | None,
        typer.Option(help="the API's admin token (default PIPELINE_API_ADMIN_TOKEN)", envvar=None),
    ] = None,
    stop_after: Annotated[
        str | None,
        typer.Option(help="stop after this step: " + ", ".join(STOPPABLE)),
    ] = None,
    storage_uri: StorageOption = None,
) -> None:
    """Run every step; steps whose inputs were seen before are skipped (content-addressed)."""
    from mushroom_pipeline.collect import PipelineError
    from mushroom_pipeline.runner import RunOptions, run_pipeline

    # TensorFlow's C++ start-up chatter is noise in a pipeline log.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    _setup_logging()
    if stop_after is not None and stop_after not in STOPPABLE:
        logger.error("--stop-after must be one of %s", ", ".join(STOPPABLE))
        raise typer.Exit(2)
    settings = get_settings()
    storage = open_storage_or_exit(storage_uri)
    # The pipeline parameters (definition.PARAMS); empty values take the settings' defaults in
    # the steps themselves, as they do on Vertex AI.
    params = {
        "import_folders": [str(folder) for folder in import_folder or []],
        "inat_species": [s.strip() for s in species.split(",") if s.strip()] if species else [],
        "max_per_species": max_per_species or 0,
        "with_feedback": with_feedback,
        "config": str(config or ""),
        "overrides": list(override or []),
        "epochs": epochs or 0,
        "model_name": model_name or "",
        "field_data_root": str(field_data_root or ""),
        "force_promote": force_promote,
        "api_url": api_url or "",
        "api_token": api_token or "",
    }
    options = RunOptions(params=params, stop_after=stop_after, command=_command_line(context))
    try:
        result = run_pipeline(storage, options, settings)
    except PipelineError as exc:
        logger.error("%s", exc)
        raise typer.Exit(1) from exc
    typer.echo(result.summary())


def _name_value(text: str, option: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name:
        logger.error("%s takes NAME=VALUE, not %r", option, text)
        raise typer.Exit(2)
    return name, value


@app.command("step")
def step_command(
    name: Annotated[str, typer.Argument(help="the step: " + ", ".join(STEPS))],
    input_values: Annotated[
        list[str] | None,
        typer.Option(
            "--input",
            help="NAME=VALUE of one input (repeatable): text as is, numbers, true/false, JSON "
            "arrays and objects; parameters left out take their defaults",
        ),
    ] = None,
    output_paths: Annotated[
        list[str] | None,
        typer.Option(
            "--output",
            help="NAME=PATH: also write this output to PATH (repeatable; KFP's output files)",
        ),
    ] = None,
    runs_dir: Annotated[
        str,
        typer.Option(help="training runs folder (TRAIN_RUNS_DIR); empty: the pipeline's default"),
    ] = "",
    pipeline_run_id: Annotated[
        str, typer.Option(help="the run this step belongs to, kept in its step record")
    ] = "",
    storage_uri: StorageOption = None,
) -> None:
    """Run one step with typed inputs; print its outputs as JSON (each KFP component runs this)."""
    from mushroom_pipeline.collect import PipelineError
    from mushroom_pipeline.definition import (
        PARAMS_BY_NAME,
        SECRET_PARAMS,
        STEPS_BY_NAME,
        decode,
        encode,
        input_kind,
    )
    from mushroom_pipeline.runner import run_step

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    _setup_logging()
    step = STEPS_BY_NAME.get(name)
    if step is None:
        logger.error("no step %r: the steps are %s", name, ", ".join(STEPS_BY_NAME))
        raise typer.Exit(2)
    declared = {item.name: item for item in step.inputs}
    inputs: dict[str, object] = {}
    for text in input_values or []:
        key, value = _name_value(text, "--input")
        if key not in declared:
            logger.error("step %s has no input %r (it takes %s)", name, key, ", ".join(declared))
            raise typer.Exit(2)
        try:
            inputs[key] = decode(value, input_kind(step, declared[key]))
        except ValueError as exc:
            logger.error("input %s of step %s: %s", key, name, exc)
            raise typer.Exit(2) from exc
    for item in step.inputs:
        if item.name in inputs:
            continue
        if item.source != "params":
            logger.error(
                "step %s needs --input %s=... (an output of %s)", name, item.name, item.source
            )
            raise typer.Exit(2)
        inputs[item.name] = PARAMS_BY_NAME[item.name].default
    outputs_to = dict(_name_value(text, "--output") for text in output_paths or [])
    unknown = sorted(set(outputs_to) - {o.name for o in step.outputs})
    if unknown:
        logger.error("step %s has no output %s", name, ", ".join(unknown))
        raise typer.Exit(2)
    # The command as the bundle's metadata records it: replayable, secrets left out.
    shown = [
        f"--input={k}={encode(v, input_kind(step, declared[k]))}"
        for k, v in inputs.items()
        if k not in SECRET_PARAMS
    ]
    command = shlex.join(["mushroom-pipeline", "step", name, *shown])
    storage = open_storage_or_exit(storage_uri)
    try:
        outcome = run_step(
            storage,
            get_settings(),
            name,
            inputs,
            pipeline_run_id or f"step-{name}",
            command,
            Path(runs_dir) if runs_dir else None,
        )
    except PipelineError as exc:
        logger.error("%s", exc)
        raise typer.Exit(1) from exc
    for output, path in outputs_to.items():
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(encode(outcome.outputs[output], step.output(output).kind), "utf-8")
    logger.info(
        "step %s %s",
        name,
        "skipped (already done)" if outcome.status == "skipped" else outcome.status,
    )
    typer.echo(json.dumps(outcome.outputs, sort_keys=True))


@app.command("monitor-drift")
def monitor_drift_command(
    database_url: Annotated[
        str | None,
        typer.Option(
            "--database-url",
            help="the API's prediction log (default MUSHROOM_DATABASE_URL, else SQLite under "
            "local storage)",
        ),
    ] = None,
    model_name: Annotated[
        str | None, typer.Option(help="registry name (default: the model of the newest answer)")
    ] = None,
    model_version: Annotated[
        str | None,
        typer.Option(help="bundle to compare with (default: the newest answer's, or the champion)"),
    ] = None,
    window: Annotated[
        str | None, typer.Option(help="hour, day or week (default PIPELINE_DRIFT_WINDOW)")
    ] = None,
    since: Annotated[
        datetime | None, typer.Option(help="ignore answers before this time (ISO 8601)")
    ] = None,
    fail_on_drift: Annotated[
        bool, typer.Option("--fail-on-drift", help="exit with status 1 when any window drifted")
    ] = False,
    storage_uri: StorageOption = None,
) -> None:
    """Report uncertain / not_a_mushroom shares and confidence drift per time window."""
    from mushroom_pipeline.drift import DriftThresholds, Window
    from mushroom_pipeline.monitor import monitor_drift
    from mushroom_pipeline.reference import ReferenceError

    _setup_logging()
    settings = get_settings()
    storage = open_storage_or_exit(storage_uri)
    windows: dict[str, Window] = {"hour": "hour", "day": "day", "week": "week"}
    chosen_window = windows.get(window or settings.drift_window)
    if chosen_window is None:
        logger.error("--window must be hour, day or week, not %r", window)
        raise typer.Exit(2)
    thresholds = DriftThresholds(
        psi=settings.drift_psi_threshold,
        ks_pvalue=settings.drift_ks_pvalue,
        min_predictions=settings.drift_min_predictions,
        max_uncertain_share=settings.drift_max_uncertain_share,
        max_not_a_mushroom_share=settings.drift_max_not_a_mushroom_share,
    )
    try:
        result = monitor_drift(
            storage,
            database_url,
            thresholds,
            window=chosen_window,
            model_name=model_name or settings.model_name,
            model_version=model_version,
            since=since,
            reference_photos=settings.drift_reference_photos,
        )
    except (ReferenceError, StorageError) as exc:
        logger.error("%s", exc)
        raise typer.Exit(2) from exc
    typer.echo(result.markdown)
    typer.echo(f"report: {storage.uri_for(result.json_key)}")
    if fail_on_drift and result.report.drift:
        raise typer.Exit(1)


@app.command("compile-kfp")
def compile_kfp_command(
    output: Annotated[Path, typer.Argument(help="where to write the pipeline YAML")],
    image: Annotated[
        str | None,
        typer.Option(
            help="image of every component: the model-training image, which carries "
            "mushroom-pipeline (default PIPELINE_TRAINING_IMAGE)"
        ),
    ] = None,
) -> None:
    """Compile the Vertex AI Pipelines (KFP v2) spec of the same steps to YAML."""
    from mushroom_pipeline.kfp_pipeline import compile_pipeline

    _setup_logging()
    compile_pipeline(output, image or get_settings().training_image)
    typer.echo(str(output))
