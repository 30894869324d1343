"""Experiment tracking: MLflow (local store under the storage root by default) and W&B if set up."""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from mlflow.tracking import MlflowClient

from mushroom_common.storage import Storage
from mushroom_training.config import Settings

logger = logging.getLogger(__name__)


def tracking_uri(storage: Storage, settings: Settings) -> str:
    """`TRAIN_TRACKING_URI`, else SQLite under the local storage root, else in the runs folder."""
    if settings.tracking_uri:
        return settings.tracking_uri
    db = storage.local_path("tracking/mlflow.db")
    if db is None:  # gs:// storage: keep the store on this machine
        db = settings.runs_dir.resolve() / "tracking" / "mlflow.db"
    db.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{db}"


def _artifact_root(uri: str) -> str | None:
    if uri.startswith("sqlite:///"):
        return (Path(uri.removeprefix("sqlite:///")).parent / "artifacts").as_uri()
    return None


def _experiment_id(client: MlflowClient, name: str, uri: str) -> str:
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        return str(experiment.experiment_id)
    return str(client.create_experiment(name, artifact_location=_artifact_root(uri)))


def flatten(document: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"a": {"b": 1}} -> {"a.b": 1}."""
    flat: dict[str, Any] = {}
    for key, value in document.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


class Tracker:
    """One tracked run: parameters, per-step metrics, artifacts, to MLflow and W&B."""

    def __init__(self, client: MlflowClient, run_id: str, wandb_run: Any | None) -> None:
        self.client = client
        self.run_id = run_id
        self.wandb_run = wandb_run

    def log_params(self, params: dict[str, Any]) -> None:
        flat = {k: str(v)[:500] for k, v in flatten(params).items()}
        for key, value in flat.items():
            self.client.log_param(self.run_id, key, value)
        if self.wandb_run is not None:
            self.wandb_run.config.update(flat, allow_val_change=True)

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        for key, value in metrics.items():
            self.client.log_metric(self.run_id, _clean(key), float(value), step=step or 0)
        if self.wandb_run is not None:
            # W&B steps must only grow; phases restart their epochs, so let W&B count.
            self.wandb_run.log({**metrics, **({"epoch": step} if step is not None else {})})

    def log_artifacts(self, local_dir: Path, artifact_path: str | None = None) -> None:
        self.client.log_artifacts(self.run_id, str(local_dir), artifact_path)

    def log_artifact(self, local_file: Path, artifact_path: str | None = None) -> None:
        self.client.log_artifact(self.run_id, str(local_file), artifact_path)

    def set_tags(self, tags: dict[str, str]) -> None:
        for key, value in tags.items():
            self.client.set_tag(self.run_id, key, value)


def _clean(key: str) -> str:
    return "".join(c if c.isalnum() or c in "_-./ " else "_" for c in key)


def _wandb_run(settings: Settings, name: str, run_id: str) -> Any | None:
    if not settings.wandb_api_key or importlib.util.find_spec("wandb") is None:
        return None
    import wandb

    return wandb.init(project=settings.wandb_project, name=name, id=run_id, resume="allow")


@contextmanager
def start_run(
    storage: Storage, settings: Settings, run_name: str, run_id: str | None = None
) -> Iterator[Tracker]:
    """Start (or resume, given run_id) a tracked run; it is marked FAILED if the block raises."""
    uri = tracking_uri(storage, settings)
    client = MlflowClient(tracking_uri=uri)
    if run_id is None:
        experiment_id = _experiment_id(client, settings.experiment, uri)
        run_id = client.create_run(experiment_id, run_name=run_name).info.run_id
    else:
        client.update_run(run_id, status="RUNNING")
    wandb_run = _wandb_run(settings, run_name, run_id)
    tracker = Tracker(client, run_id, wandb_run)
    logger.info("tracking run %s at %s", run_id, uri)
    try:
        yield tracker
    except BaseException:
        client.set_terminated(run_id, status="FAILED")
        if wandb_run is not None:
            wandb_run.finish(exit_code=1)
        raise
    client.set_terminated(run_id, status="FINISHED")
    if wandb_run is not None:
        wandb_run.finish()


def search_runs(storage: Storage, settings: Settings, max_results: int = 50) -> list[Any]:
    """The experiment's runs, newest first."""
    uri = tracking_uri(storage, settings)
    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name(settings.experiment)
    if experiment is None:
        return []
    return list(
        client.search_runs(
            [experiment.experiment_id],
            order_by=["attributes.start_time DESC"],
            max_results=max_results,
        )
    )
