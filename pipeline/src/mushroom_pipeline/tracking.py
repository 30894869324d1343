"""Recording pipeline runs in MLflow, next to the training runs (same tracking store)."""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Any

from mushroom_common.storage import Storage

logger = logging.getLogger(__name__)

PIPELINE_EXPERIMENT_SUFFIX = "-pipeline"
MAX_TAG_LENGTH = 5000


def _flatten(prefix: str, value: Any, into: dict[str, str]) -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            _flatten(f"{prefix}.{key}", item, into)
    else:
        into[prefix] = str(value)[:MAX_TAG_LENGTH]


def _clean(key: str) -> str:
    return "".join(c if c.isalnum() or c in "_-./ " else "_" for c in key)


def record_run(
    storage: Storage,
    pipeline_run_id: str,
    steps: list[dict[str, Any]],
    status: str,
    report_files: dict[str, str],
    training_run_id: str | None,
    runs_dir: Path,
) -> str | None:
    """Log one pipeline run (every step's key, status and outputs) to MLflow.

    The run goes to the experiment `<TRAIN_EXPERIMENT>-pipeline` of the training tracking store;
    the training run, when there is one, gets the pipeline's outputs as `pipeline.*` tags.

    Args:
        storage: the storage root (the default tracking store lives under it).
        pipeline_run_id: this pipeline run's id.
        steps: one dict per step with `step`, `key`, `status` and `outputs`.
        status: FINISHED or FAILED.
        report_files: artifact file name -> text (the pipeline report).
        training_run_id: the MLflow run of the training step, when known.
        runs_dir: the training runs folder (holds the tracking store when storage is gs://).

    Returns:
        The MLflow run id, or None when tracking is unavailable.
    """
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    from mushroom_training.config import get_settings as get_train_settings
    from mushroom_training.tracking import tracking_uri

    train_settings = get_train_settings().model_copy(update={"runs_dir": runs_dir})
    uri = tracking_uri(storage, train_settings)
    try:
        client = MlflowClient(tracking_uri=uri)
        name = train_settings.experiment + PIPELINE_EXPERIMENT_SUFFIX
        experiment = client.get_experiment_by_name(name)
        if experiment is not None:
            experiment_id = str(experiment.experiment_id)
        else:
            artifacts = None
            if uri.startswith("sqlite:///"):
                artifacts = (Path(uri.removeprefix("sqlite:///")).parent / "artifacts").as_uri()
            experiment_id = str(client.create_experiment(name, artifact_location=artifacts))
        run = client.create_run(
            experiment_id,
            run_name=f"pipeline-{pipeline_run_id}",
            tags={"pipeline_run_id": pipeline_run_id, "kind": "pipeline"},
        )
        run_id = str(run.info.run_id)
        tags: dict[str, str] = {}
        for step in steps:
            client.log_param(run_id, f"{step['step']}.key", str(step.get("key")))
            tags[f"{step['step']}.status"] = str(step["status"])
            _flatten(f"{step['step']}.outputs", step.get("outputs", {}), tags)
        for key, value in tags.items():
            client.set_tag(run_id, _clean(key), value)
        with tempfile.TemporaryDirectory(prefix="mushroom-pipeline-") as tmp:
            for file_name, text in report_files.items():
                path = Path(tmp) / file_name
                path.write_text(text, "utf-8")
                client.log_artifact(run_id, str(path), "pipeline")
        client.set_terminated(run_id, status=status)
        if training_run_id:
            client.set_tag(training_run_id, "pipeline.run_id", pipeline_run_id)
            client.set_tag(training_run_id, "pipeline.mlflow_run_id", run_id)
            for key, value in tags.items():
                if not key.startswith("train."):
                    client.set_tag(training_run_id, _clean(f"pipeline.{key}"), value)
    except MlflowException as exc:
        logger.warning("could not record the pipeline run in MLflow at %s: %s", uri, exc)
        return None
    logger.info("pipeline run recorded in MLflow: run %s at %s", run_id, uri)
    return run_id
