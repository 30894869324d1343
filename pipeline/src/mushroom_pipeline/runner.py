"""`mushroom-pipeline run`: every step in order, each skipped when its inputs were seen before."""

from __future__ import annotations

import importlib.metadata
import logging
import os
import re
import subprocess
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mushroom_common.bundle import CHAMPION_FILE, ChampionPointer
from mushroom_common.storage import ObjectNotFoundError, Storage
from mushroom_pipeline.collect import (
    CollectOptions,
    PipelineError,
    build,
    build_inputs,
    collect,
    collect_inputs,
    dataset_still_there,
)
from mushroom_pipeline.config import Settings
from mushroom_pipeline.reload import reload_api
from mushroom_pipeline.steps import RUNS_PREFIX, StepCache, StepOutcome, canonical_json, sha256_text
from mushroom_pipeline.training import TrainingSteps

logger = logging.getLogger(__name__)

STEP_ORDER = ("collect", "build", "train", "export", "evaluate", "promote", "reload")
CODE_PACKAGES = ("mushroom-common", "mushroom-collector", "mushroom-training", "mushroom-pipeline")


@dataclass(frozen=True)
class RunOptions:
    """Everything `mushroom-pipeline run` was asked to do."""

    collect: CollectOptions = field(default_factory=CollectOptions)
    config_path: Path | None = None
    overrides: list[str] = field(default_factory=list)
    epochs: int | None = None
    model_name: str | None = None
    force_promote: bool = False
    api_url: str | None = None
    api_token: str = ""
    stop_after: str | None = None


@dataclass
class PipelineResult:
    """The outcome of one pipeline run."""

    run_id: str
    steps: list[StepOutcome]
    report_key: str
    mlflow_run_id: str | None = None

    def outputs(self, step: str) -> dict[str, Any]:
        """The outputs of one step (empty when it did not run)."""
        for outcome in self.steps:
            if outcome.step == step:
                return outcome.outputs
        return {}

    def summary(self) -> str:
        """One line per step, then the report's location."""
        lines = [
            f"{o.step:<9} {o.status:<8} "
            + ("(already done) " if o.status == "skipped" else f"({o.duration_s:.1f} s) ")
            + _brief(o)
            for o in self.steps
        ]
        lines.append(f"report: {self.report_key}")
        return "\n".join(lines)


def _brief(outcome: StepOutcome) -> str:
    out = outcome.outputs
    if outcome.step == "build":
        return f"dataset {out.get('dataset_version')} ({out.get('photos')} photos)"
    if outcome.step == "train":
        return f"run {out.get('run_id')}"
    if outcome.step in ("export", "evaluate"):
        return f"bundle {out.get('name')}/{out.get('version')}"
    if outcome.step == "promote":
        return f"champion {out.get('champion')} ({out.get('reason', '')})"
    if outcome.step == "reload":
        return f"API serves {out.get('serving')}"
    return ""


def code_version(settings: Settings) -> str:
    """PIPELINE_CODE_VERSION, else the packages' versions and the repository's git commit."""
    if settings.code_version:
        return settings.code_version
    versions = ",".join(f"{p}={importlib.metadata.version(p)}" for p in CODE_PACKAGES)
    try:
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        head = "no-git"
    return f"{head}+{sha256_text(versions)[:8]}"


def training_runs_dir(storage: Storage, settings: Settings) -> Path:
    """Where training runs go: TRAIN_RUNS_DIR, else beside the local storage, else the work dir."""
    if os.environ.get("TRAIN_RUNS_DIR"):
        return Path(os.environ["TRAIN_RUNS_DIR"])
    local = storage.local_path("pipelines/training-runs")
    return local if local is not None else settings.work_dir / "training-runs"


def current_champion(storage: Storage, name: str) -> str | None:
    """The version models/<name>/champion.json points at, if any."""
    try:
        pointer = ChampionPointer.model_validate_json(
            storage.read_bytes(f"models/{name}/{CHAMPION_FILE}")
        )
    except ObjectNotFoundError:
        return None
    return pointer.version


def run_pipeline(storage: Storage, options: RunOptions, settings: Settings) -> PipelineResult:
    """Run collect -> build -> train -> export -> evaluate -> promote -> reload.

    Args:
        storage: the storage root every service shares.
        options: what to collect, how to train, where the API is.
        settings: the pipeline settings.

    Returns:
        Every step's outcome and the storage key of the run report.

    Raises:
        PipelineError: a step failed (the run report records which).
    """
    run_id = f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:6]}"
    cache = StepCache(storage, run_id)
    outcomes: list[StepOutcome] = []
    version = code_version(settings)
    logger.info("pipeline run %s on %s (code %s)", run_id, storage.uri, version)
    failed: StepOutcome | None = None
    training: TrainingSteps | None = None

    def stop(step: str) -> bool:
        return options.stop_after == step

    try:
        # 1. collect: folders, iNaturalist, feedback (each collector skips what it has already).
        if options.collect.import_folders or options.collect.inat or options.collect.with_feedback:
            outcomes.append(
                cache.run(
                    "collect",
                    collect_inputs(storage, options.collect),
                    lambda: collect(storage, options.collect),
                )
            )
        if stop("collect"):
            return _finish(storage, run_id, outcomes, None, None)
        # 2. build: the dataset version of everything collected.
        built = cache.run(
            "build", build_inputs(storage), lambda: build(storage), dataset_still_there(storage)
        )
        outcomes.append(built)
        dataset_version = str(built.outputs["dataset_version"])
        if stop("build"):
            return _finish(storage, run_id, outcomes, None, None)
        # 3-6. train, export, evaluate, promote (model-training's Python API).
        training = TrainingSteps(
            storage=storage,
            runs_dir=training_runs_dir(storage, settings),
            config_path=options.config_path,
            overrides=options.overrides,
            epochs=options.epochs,
            model_name=options.model_name,
        )
        config = training.resolved_config(dataset_version)
        config_hash = sha256_text(canonical_json(config))
        trained = cache.run(
            "train",
            {
                "dataset_version": dataset_version,
                "config_sha256": config_hash,
                "config": config,
                "code_version": version,
            },
            lambda: training.train(config),
            training.run_still_there,
        )
        outcomes.append(trained)
        if stop("train"):
            return _finish(storage, run_id, outcomes, training, trained.outputs.get("run_id"))
        exported = cache.run(
            "export",
            {
                "train_key": trained.key,
                "run_id": trained.outputs["run_id"],
                "code_version": version,
            },
            lambda: training.export(trained.outputs),
            training.bundle_still_there,
        )
        outcomes.append(exported)
        name, bundle_version = str(exported.outputs["name"]), str(exported.outputs["version"])
        champion_before = current_champion(storage, name)
        evaluated = cache.run(
            "evaluate",
            {
                "bundle": f"{name}/{bundle_version}",
                "champion": champion_before,
                "dataset_version": dataset_version,
                "code_version": version,
            },
            lambda: training.evaluate(name, bundle_version, champion_before),
        )
        outcomes.append(evaluated)
        if stop("evaluate"):
            return _finish(storage, run_id, outcomes, training, trained.outputs.get("run_id"))
        promoted = cache.run(
            "promote",
            {
                "bundle": f"{name}/{bundle_version}",
                "champion": champion_before,
                "force": options.force_promote,
            },
            lambda: training.promote(name, bundle_version, options.force_promote),
        )
        outcomes.append(promoted)
        if stop("promote"):
            return _finish(storage, run_id, outcomes, training, trained.outputs.get("run_id"))
        # 7. reload: tell a running API to serve the champion (skipped when it already does).
        if options.api_url:
            champion = current_champion(storage, name)
            outcomes.append(
                reload_api(
                    options.api_url, options.api_token, name, champion, settings.api_timeout_s
                )
            )
        return _finish(storage, run_id, outcomes, training, trained.outputs.get("run_id"))
    except PipelineError as exc:
        failed = StepOutcome(step=_next_step(outcomes), key=None, status="failed", error=str(exc))
        outcomes.append(failed)
        _finish(storage, run_id, outcomes, training, None)
        raise
    except Exception as exc:
        failed = StepOutcome(
            step=_next_step(outcomes),
            key=None,
            status="failed",
            error=f"{type(exc).__name__}: {exc}",
        )
        outcomes.append(failed)
        _finish(storage, run_id, outcomes, training, None)
        raise PipelineError(f"step {failed.step} failed: {failed.error}") from exc


def _next_step(outcomes: list[StepOutcome]) -> str:
    done = {o.step for o in outcomes}
    for step in STEP_ORDER:
        if step not in done:
            return step
    return "unknown"


def render_report(run_id: str, storage: Storage, outcomes: list[StepOutcome]) -> str:
    """The pipeline run as a Markdown page."""
    lines = [
        f"# Pipeline run {run_id}",
        "",
        f"Storage: {storage.uri}",
        "",
        "| step | status | key | seconds | outputs |",
        "|---|---|---|---:|---|",
    ]
    for o in outcomes:
        outputs = _brief(o) or ", ".join(
            f"{k}={v}" for k, v in o.outputs.items() if not isinstance(v, dict)
        )
        if o.error:
            outputs = "ERROR: " + _one_line(o.error)
        lines.append(f"| {o.step} | {o.status} | {o.key or '-'} | {o.duration_s:.1f} | {outputs} |")
    evaluate = next((o for o in outcomes if o.step == "evaluate"), None)
    if evaluate is not None and evaluate.outputs.get("metrics"):
        lines += ["", "## Test-split metrics (candidate vs champion on the same split)", ""]
        lines += ["| model | " + " | ".join(sorted(evaluate.outputs["metrics"])) + " |"]
        lines += ["|---|" + "---:|" * len(evaluate.outputs["metrics"])]
        for label, key in (("candidate", "metrics"), ("champion", "champion_metrics")):
            metrics = evaluate.outputs.get(key) or {}
            if metrics:
                lines.append(
                    f"| {label} | "
                    + " | ".join(
                        f"{metrics.get(m, float('nan')):.4f}"
                        for m in sorted(evaluate.outputs["metrics"])
                    )
                    + " |"
                )
    promote = next((o for o in outcomes if o.step == "promote"), None)
    if promote is not None:
        lines += ["", f"Promotion: {promote.outputs.get('reason', '')}"]
    return "\n".join(lines) + "\n"


def _one_line(text: str) -> str:
    """The first non-empty line, without ANSI colours or table pipes."""
    plain = re.sub(r"\x1b\[[0-9;]*m", "", text)
    first = next((line.strip() for line in plain.splitlines() if line.strip()), "")
    return first.replace("|", "\\|")


def _finish(
    storage: Storage,
    run_id: str,
    outcomes: list[StepOutcome],
    training: TrainingSteps | None,
    training_run_id: Any,
) -> PipelineResult:
    """Write the run report (JSON and Markdown) and record the run in MLflow."""
    from mushroom_pipeline.tracking import record_run

    status = "FAILED" if any(o.status == "failed" for o in outcomes) else "FINISHED"
    markdown = render_report(run_id, storage, outcomes)
    document = {
        "run_id": run_id,
        "status": status,
        "finished_at": datetime.now(UTC).isoformat(),
        "steps": [o.model_dump(mode="json") for o in outcomes],
    }
    prefix = f"{RUNS_PREFIX}/{run_id}"
    storage.write_json(f"{prefix}/run.json", document)
    storage.write_text(f"{prefix}/report.md", markdown, "text/markdown")
    mlflow_run = None
    if training is not None or any(o.status == "done" for o in outcomes):
        mlflow_run = record_run(
            storage,
            run_id,
            [o.model_dump(mode="json") for o in outcomes],
            status,
            {"report.md": markdown},
            str(training_run_id) if training_run_id else None,
        )
    for o in outcomes:
        logger.info(
            "%-9s %s", o.step, "skipped (already done)" if o.status == "skipped" else o.status
        )
    logger.info(
        "pipeline run %s %s; report %s",
        run_id,
        status.lower(),
        storage.uri_for(f"{prefix}/report.md"),
    )
    return PipelineResult(run_id, outcomes, storage.uri_for(f"{prefix}/report.md"), mlflow_run)
