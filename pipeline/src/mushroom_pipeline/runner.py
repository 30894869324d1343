"""`mushroom-pipeline run`: every step in order, each skipped when its inputs were seen before."""

from __future__ import annotations

import hashlib
import importlib
import logging
import os
import re
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mushroom_common.registry import ModelRegistry
from mushroom_common.storage import Storage
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

CODE_PACKAGES = ("mushroom_common", "mushroom_training")
CODE_SUFFIXES = frozenset({".py", ".yaml", ".json"})


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
    command: str = "mushroom-pipeline run"


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
    if outcome.step == "collect":
        return f"{out.get('records')} collected records"
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
    """PIPELINE_CODE_VERSION, else a hash of the code the model steps run (content-addressed).

    The sha256 of every source and data file of the contract and training packages: a change
    there retrains; a change anywhere else (the API, the frontend, this package) does not.
    """
    if settings.code_version:
        return settings.code_version
    digest = hashlib.sha256()
    for package in CODE_PACKAGES:
        root = Path(importlib.import_module(package).__file__ or "").resolve().parent
        for path in sorted(p for p in root.rglob("*") if p.suffix in CODE_SUFFIXES):
            digest.update(f"{package}/{path.relative_to(root).as_posix()}\0".encode())
            digest.update(path.read_bytes())
    return f"src-{digest.hexdigest()[:16]}"


def training_runs_dir(storage: Storage, settings: Settings) -> Path:
    """Where training runs go: TRAIN_RUNS_DIR, else beside the local storage, else the work dir."""
    if os.environ.get("TRAIN_RUNS_DIR"):
        return Path(os.environ["TRAIN_RUNS_DIR"])
    local = storage.local_path("pipelines/training-runs")
    return local if local is not None else settings.work_dir / "training-runs"


def current_champion(storage: Storage, name: str) -> str | None:
    """The registry's champion version of a model name, if any (raises when unreadable)."""
    pointer = ModelRegistry(storage).champion(name)
    return pointer.version if pointer is not None else None


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
    training: TrainingSteps | None = None
    current = ["collect"]  # the step being worked on, for the failure record

    def stop(step: str) -> bool:
        return options.stop_after == step

    def finish(steps: TrainingSteps | None, training_run_id: Any) -> PipelineResult:
        return _finish(storage, settings, run_id, outcomes, steps, training_run_id)

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
            return finish(None, None)
        # 2. build: the dataset version of everything collected.
        current[0] = "build"
        built = cache.run(
            "build", build_inputs(storage), lambda: build(storage), dataset_still_there(storage)
        )
        outcomes.append(built)
        dataset_version = str(built.outputs["dataset_version"])
        if stop("build"):
            return finish(None, None)
        # 3-6. train, export, evaluate, promote (model-training's Python API).
        current[0] = "train"
        training = TrainingSteps(
            storage=storage,
            runs_dir=training_runs_dir(storage, settings),
            config_path=options.config_path,
            overrides=options.overrides,
            epochs=options.epochs,
            model_name=options.model_name,
            command=options.command,
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
            return finish(training, trained.outputs.get("run_id"))
        current[0] = "export"
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
        if stop("export"):
            return finish(training, trained.outputs.get("run_id"))
        name, bundle_version = str(exported.outputs["name"]), str(exported.outputs["version"])
        current[0] = "evaluate"
        evaluated = cache.run(
            "evaluate",
            {
                "bundle": f"{name}/{bundle_version}",
                "dataset_version": dataset_version,
                "code_version": version,
            },
            lambda: training.evaluate(name, bundle_version),
        )
        outcomes.append(evaluated)
        if stop("evaluate"):
            return finish(training, trained.outputs.get("run_id"))
        # The gate compares with the champion on this bundle's test split; a bundle is decided
        # once (its record is kept); --force-promote asks again.
        current[0] = "promote"
        promoted = cache.run(
            "promote",
            {"bundle": f"{name}/{bundle_version}", "force": options.force_promote},
            lambda: training.promote(name, bundle_version, options.force_promote),
        )
        outcomes.append(promoted)
        if stop("promote"):
            return finish(training, trained.outputs.get("run_id"))
        # 7. reload: tell a running API to serve the champion (skipped when it already does).
        if options.api_url:
            current[0] = "reload"
            champion = current_champion(storage, name)
            outcomes.append(
                reload_api(
                    options.api_url, options.api_token, name, champion, settings.api_timeout_s
                )
            )
        return finish(training, trained.outputs.get("run_id"))
    except PipelineError as exc:
        outcomes.append(StepOutcome(step=current[0], key=None, status="failed", error=str(exc)))
        finish(training, None)
        raise
    except Exception as exc:
        error = f"{type(exc).__name__}: {exc}"
        outcomes.append(StepOutcome(step=current[0], key=None, status="failed", error=error))
        finish(training, None)
        raise PipelineError(f"step {current[0]} failed: {error}") from exc


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
    if evaluate is not None and evaluate.outputs.get("variants"):
        variants: dict[str, dict[str, float]] = evaluate.outputs["variants"]
        columns = ("top1", "top3", "macro_f1", "poison_cost", "ece_scaled")
        lines += [
            "",
            f"## Bundle {evaluate.outputs.get('name')}/{evaluate.outputs.get('version')} on the "
            f"test split of {evaluate.outputs.get('dataset_version')}",
            "",
            "| variant | " + " | ".join(columns) + " |",
            "|---|" + "---:|" * len(columns),
        ]
        for variant, metrics in sorted(variants.items()):
            cells = " | ".join(f"{metrics.get(c, float('nan')):.4f}" for c in columns)
            lines.append(f"| {variant} | {cells} |")
    promote = next((o for o in outcomes if o.step == "promote"), None)
    if promote is not None:
        out = promote.outputs
        lines += [
            "",
            "## Promotion",
            "",
            f"{out.get('candidate')}: {out.get('reason', '')}; champion now "
            f"{out.get('champion')}, before {out.get('previous_champion')}.",
        ]
        if out.get("previous_metrics"):
            lines.append(
                f"Candidate {out.get('metrics')} vs champion {out.get('previous_metrics')} "
                "on the candidate's test split."
            )
    return "\n".join(lines) + "\n"


def _one_line(text: str) -> str:
    """The first non-empty line, without ANSI colours or table pipes."""
    plain = re.sub(r"\x1b\[[0-9;]*m", "", text)
    first = next((line.strip() for line in plain.splitlines() if line.strip()), "")
    return first.replace("|", "\\|")


def _finish(
    storage: Storage,
    settings: Settings,
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
            training_runs_dir(storage, settings),
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
