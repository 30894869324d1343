"""`mushroom-pipeline run`: every step in order, each skipped when its inputs were seen before."""

from __future__ import annotations

import hashlib
import importlib
import logging
import re
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mushroom_common.storage import Storage
from mushroom_pipeline.collect import PipelineError
from mushroom_pipeline.config import Settings
from mushroom_pipeline.definition import (
    PARAMS_BY_NAME,
    STEPS,
    STEPS_BY_NAME,
    StepContext,
    Values,
    execute,
    step_inputs,
)
from mushroom_pipeline.steps import RUNS_PREFIX, StepCache, StepOutcome

logger = logging.getLogger(__name__)

CODE_PACKAGES = ("mushroom_common", "mushroom_training")
CODE_SUFFIXES = frozenset({".py", ".yaml", ".json"})


@dataclass(frozen=True)
class RunOptions:
    """Everything `mushroom-pipeline run` was asked to do."""

    params: Values = field(default_factory=dict)
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
    step = STEPS_BY_NAME.get(outcome.step)
    return step.summary(outcome.outputs) if step is not None and outcome.outputs else ""


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


def training_runs_dir(storage: Storage) -> Path:
    """Where training runs go: training's own rule (`TRAIN_RUNS_DIR`, else runs/ in the local
    storage root, else ./mushroom-data/runs) applied to this run's storage."""
    from mushroom_training.config import Settings as TrainSettings

    return TrainSettings(storage_uri=storage.uri).runs_dir


def step_context(
    storage: Storage, settings: Settings, command: str, runs_dir: Path | None = None
) -> StepContext:
    """The context every step of one run (or one `step` command) runs in."""
    return StepContext(
        storage=storage,
        settings=settings,
        runs_dir=runs_dir or training_runs_dir(storage),
        code_version=code_version(settings),
        command=command,
    )


def run_step(
    storage: Storage,
    settings: Settings,
    name: str,
    inputs: Values,
    pipeline_run_id: str,
    command: str,
    runs_dir: Path | None = None,
) -> StepOutcome:
    """Run one step by itself, as each Vertex AI component does (`mushroom-pipeline step`).

    Raises:
        PipelineError: the step failed, or its inputs do not match its declaration.
    """
    step = STEPS_BY_NAME.get(name)
    if step is None:
        raise PipelineError(f"no step {name!r}: the steps are {', '.join(STEPS_BY_NAME)}")
    context = step_context(storage, settings, command, runs_dir)
    try:
        return execute(step, context, inputs, StepCache(storage, pipeline_run_id))
    except PipelineError:
        raise
    except Exception as exc:
        raise PipelineError(f"step {name} failed: {type(exc).__name__}: {exc}") from exc


def run_pipeline(storage: Storage, options: RunOptions, settings: Settings) -> PipelineResult:
    """Run every step of definition.STEPS in order: collect -> build -> ... -> reload.

    Args:
        storage: the storage root every service shares.
        options: the pipeline parameters (definition.PARAMS), where to stop.
        settings: the pipeline settings.

    Returns:
        Every step's outcome and the storage key of the run report.

    Raises:
        PipelineError: a step failed (the run report records which).
    """
    unknown = sorted(set(options.params) - set(PARAMS_BY_NAME))
    if unknown:
        raise PipelineError(f"unknown pipeline parameters: {', '.join(unknown)}")
    run_id = f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:6]}"
    cache = StepCache(storage, run_id)
    context = step_context(storage, settings, options.command)
    logger.info("pipeline run %s on %s (code %s)", run_id, storage.uri, context.code_version)
    outcomes: list[StepOutcome] = []
    upstream: dict[str, Values] = {}
    for step in STEPS:
        try:
            outcome = execute(step, context, step_inputs(step, options.params, upstream), cache)
        except Exception as exc:
            error = str(exc) if isinstance(exc, PipelineError) else f"{type(exc).__name__}: {exc}"
            outcomes.append(StepOutcome(step=step.name, key=None, status="failed", error=error))
            _finish(storage, settings, run_id, outcomes)
            if isinstance(exc, PipelineError):
                raise
            raise PipelineError(f"step {step.name} failed: {error}") from exc
        outcomes.append(outcome)
        upstream[step.name] = outcome.outputs
        if options.stop_after == step.name:
            break
    return _finish(storage, settings, run_id, outcomes)


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
    by_step = {o.step: o.outputs for o in outcomes}
    variants: dict[str, dict[str, float]] = by_step.get("evaluate", {}).get("variants", {})
    if variants:
        bundle = by_step.get("export", {})
        columns = ("top1", "top3", "macro_f1", "poison_cost", "ece_scaled")
        lines += [
            "",
            f"## Bundle {bundle.get('name')}/{bundle.get('version')} on the test split of "
            f"{by_step.get('build', {}).get('dataset_version')}",
            "",
            "| variant | " + " | ".join(columns) + " |",
            "|---|" + "---:|" * len(columns),
        ]
        for variant, metrics in sorted(variants.items()):
            cells = " | ".join(f"{metrics.get(c, float('nan')):.4f}" for c in columns)
            lines.append(f"| {variant} | {cells} |")
    field = by_step.get("field", {})
    if field.get("field_bundle"):
        metrics = field.get("field_metrics", {})
        lines += [
            "",
            "## Field validation",
            "",
            f"{field['field_bundle']}: the exported bundle with its verdict thresholds tuned on "
            f"{int(metrics.get('field_val_photos', 0))} field validation photos; the gate judges "
            f"it on them (field-val top-1 {metrics.get('field_val_top1', float('nan')):.4f}, "
            f"field test top-1 {metrics.get('field_top1', float('nan')):.4f}, measured only).",
        ]
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
                + (
                    "on field validation."
                    if field.get("field_bundle")
                    else "on the candidate's test split."
                )
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
    training_run_id = next((o.outputs.get("run_id") for o in outcomes if o.step == "train"), None)
    if training_run_id is not None or any(o.status == "done" for o in outcomes):
        mlflow_run = record_run(
            storage,
            run_id,
            [o.model_dump(mode="json") for o in outcomes],
            status,
            {"report.md": markdown},
            str(training_run_id) if training_run_id else None,
            training_runs_dir(storage),
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
