"""Training: cached trunk features, phase 1 (head), phase 2 (top blocks), temperature, student.

The steps live in their own modules (`features`, `phase1`, `phase2`, `fresh_views`,
`distillation`, `studies`); this one opens the session, runs them in order and saves the run."""

from __future__ import annotations

import json
import logging
import subprocess
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf
from pydantic import BaseModel, ConfigDict, Field

from mushroom_common.storage import Storage, open_storage
from mushroom_training.config import Settings, TrainConfig, dump_config, get_settings
from mushroom_training.data import LoadedDataset, load_dataset
from mushroom_training.distillation import (
    StudentOutcome,
    assemble_student,
    build_student,
    distill,
)
from mushroom_training.features import CachedSplits, build_extractor, cache_splits
from mushroom_training.fresh_views import fine_tune_top_on_fresh_views
from mushroom_training.metrics import classification_metrics, fit_temperature
from mushroom_training.model import Network, build_network, save_network
from mushroom_training.phase1 import fit_head
from mushroom_training.phase2 import PhaseTwoViews, fine_tune_top
from mushroom_training.session import TrainingSession, predict
from mushroom_training.studies.ablations import run_studies
from mushroom_training.tracking import start_run

logger = logging.getLogger(__name__)

RUN_FILE = "run.json"
CONFIG_FILE = "config.yaml"
WEIGHTS_FILE = "model.weights.h5"
STUDENT_WEIGHTS_FILE = "student.weights.h5"
HISTORY_FILE = "history.json"
PREDICTIONS_FILE = "predictions.npz"
# Keras dtype policy of each `training.mixed_precision` value.
DTYPE_POLICIES = {"off": "float32", "bfloat16": "mixed_bfloat16", "float16": "mixed_float16"}


class RunInfo(BaseModel):
    """`run.json`: what a training run produced and from what."""

    model_config = ConfigDict(extra="forbid")

    run_id: str
    run_name: str
    dataset_version: str
    labels: list[str]
    image_size: int
    backbone: str
    weights_loaded: str
    temperature: float
    student_temperature: float | None = None
    git_revision: str
    command: str
    seed: int
    created_at: datetime
    train_seconds: float
    counts: dict[str, int]
    val_metrics: dict[str, float] = Field(default_factory=dict)
    test_metrics: dict[str, float] = Field(default_factory=dict)
    student_test_metrics: dict[str, float] = Field(default_factory=dict)
    studies: dict[str, Any] = Field(
        default_factory=dict,
        description="open-set run and ablations (genus loss, resolution/JPEG degradation)",
    )


@dataclass
class TrainResult:
    """What `train` returns."""

    run_id: str
    run_dir: Path
    metrics: dict[str, float]


def git_revision() -> str:
    """The code's git commit (with '-dirty' when the tree has changes), or 'unknown'."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True, timeout=10
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{head}-dirty" if dirty else head


def distribution_strategy(name: str) -> tf.distribute.Strategy:
    """The tf.distribute strategy named by the config."""
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multi_worker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    return tf.distribute.get_strategy()


@dataclass
class _Trained:
    """What the fitting steps leave for the run's files and metrics."""

    network: Network
    student: tuple[keras.Model, keras.Model] | None
    cached: CachedSplits
    val_logits: np.ndarray
    test_logits: np.ndarray
    temperature: float
    student_outcome: StudentOutcome | None
    studies: dict[str, Any]


def _train_teacher(
    session: TrainingSession, network: Network, dataset: LoadedDataset, cached: CachedSplits
) -> None:
    """Phase 1 on the pooled features of the frozen top (GAP is linear: same as the full head),
    then phase 2 on cached trunk outputs or on fresh views of the photos."""
    config = session.config
    head = (network.head.get_layer("species_logits"), network.head.get_layer("head_dropout"))
    fit_head(session, head, cached.head_data, dataset.labels)
    if config.model.fine_tune_blocks == 0 or config.training.phase2_epochs == 0:
        return
    if config.training.phase2_views == "fresh":
        train_split, val_split = dataset.splits["train"], dataset.splits["val"]
        fine_tune: Any = fine_tune_top_on_fresh_views
        train = PhaseTwoViews(train_split.images, train_split.labels)
        validation = PhaseTwoViews(val_split.images, val_split.labels)
    else:
        fine_tune = fine_tune_top
        train = PhaseTwoViews(cached.train.teacher, cached.train.labels)
        validation = PhaseTwoViews(cached.val.teacher, cached.val.labels)
    n = len(dataset.labels)
    fine_tune(network, train, validation, n, config, [session.epoch_logger("phase2")])


def _fit_models(session: TrainingSession, dataset: LoadedDataset) -> _Trained:
    """Cache the trunk outputs, run the studies, train the teacher (and the student)."""
    config, settings = session.config, session.settings
    n = len(dataset.labels)
    with distribution_strategy(config.training.distribution).scope():
        network = build_network(config, n, settings.weights_cache_dir)
        student = None
        if config.student.enabled:
            student = build_student(config, n, settings.weights_cache_dir)
        extractor = build_extractor(
            network, student[0] if student else None, config.data.image_size
        )
        cached = cache_splits(network, extractor, dataset, config)
        studies = run_studies(session, network, extractor, dataset, cached)
        _train_teacher(session, network, dataset, cached)

        trunk_in = keras.Input(cached.train.teacher.shape[1:])
        teacher_logits = keras.Model(trunk_in, network.head(network.top(trunk_in)))
        val_logits = predict(teacher_logits, cached.val.teacher, session.batch_size)
        test_logits = predict(teacher_logits, cached.test.teacher, session.batch_size)
        temperature = fit_temperature(val_logits, cached.val.labels)
        outcome = None
        if student is not None:
            train_logits = predict(teacher_logits, cached.train.teacher, session.batch_size)
            outcome = distill(session, student[1], cached, train_logits, val_logits, n)
    return _Trained(
        network, student, cached, val_logits, test_logits, temperature, outcome, studies
    )


def _save_run(
    session: TrainingSession,
    dataset: LoadedDataset,
    trained: _Trained,
    command: str,
    started: float,
) -> RunInfo:
    """Log the metrics and write the weights, predictions, history and run.json."""
    config, tracker, run_dir = session.config, session.tracker, session.run_dir
    val_labels, test_labels = trained.cached.val.labels, trained.cached.test.labels
    temperature, student = trained.temperature, trained.student_outcome
    val_metrics = classification_metrics(
        trained.val_logits, val_labels, dataset.labels, temperature
    )
    test_metrics = classification_metrics(
        trained.test_logits, test_labels, dataset.labels, temperature
    )
    student_metrics: dict[str, float] = {}
    if student is not None:
        student_metrics = classification_metrics(
            student.test_logits, test_labels, dataset.labels, student.temperature
        )
    tracker.log_metrics({f"val/{k}": v for k, v in val_metrics.items()})
    tracker.log_metrics({f"test/{k}": v for k, v in test_metrics.items()})
    tracker.log_metrics({f"student_test/{k}": v for k, v in student_metrics.items()})
    tracker.log_metrics({"temperature": temperature})

    save_network(trained.network, run_dir / WEIGHTS_FILE)
    if trained.student is not None:
        trunk, head = trained.student
        assemble_student(trunk, head, config.data.image_size).save_weights(
            run_dir / STUDENT_WEIGHTS_FILE
        )
    predictions = {
        "val_logits": trained.val_logits,
        "val_labels": val_labels,
        "test_logits": trained.test_logits,
        "test_labels": test_labels,
    }
    if student is not None:
        predictions |= {
            "student_val_logits": student.val_logits,
            "student_test_logits": student.test_logits,
        }
    np.savez(run_dir / PREDICTIONS_FILE, **predictions)  # type: ignore[arg-type]  # numpy stub: **kwds typed as bool
    (run_dir / HISTORY_FILE).write_text(json.dumps(session.history, indent=2), "utf-8")
    info = RunInfo(
        run_id=tracker.run_id,
        run_name=config.run_name,
        dataset_version=dataset.version_id,
        labels=dataset.labels,
        image_size=config.data.image_size,
        backbone=config.model.backbone,
        weights_loaded=trained.network.weights_loaded,
        temperature=temperature,
        student_temperature=student.temperature if student is not None else None,
        git_revision=git_revision(),
        command=command,
        seed=config.training.seed,
        created_at=datetime.now(UTC),
        train_seconds=time.monotonic() - started,
        counts={split: len(data) for split, data in dataset.splits.items()},
        val_metrics=val_metrics,
        test_metrics=test_metrics,
        student_test_metrics=student_metrics,
        studies=trained.studies,
    )
    (run_dir / RUN_FILE).write_text(info.model_dump_json(indent=2), "utf-8")
    tracker.log_artifacts(run_dir, "run")
    return info


def train(
    config: TrainConfig,
    *,
    storage: Storage | None = None,
    settings: Settings | None = None,
    command: str = "",
) -> TrainResult:
    """Train a classifier on a dataset version and save the run (weights, config, metrics).

    Args:
        config: the run configuration (logged with the run).
        storage: where the dataset version lives (default: the settings' storage URI).
        settings: service settings (default: `get_settings()`).
        command: the command line that started the run, recorded for reproduction.

    Returns:
        The tracking run id, the local run folder and the Keras model's test metrics.
    """
    settings = settings or get_settings()
    storage = storage or open_storage(settings.storage_uri)
    started = time.monotonic()
    keras.utils.set_random_seed(config.training.seed)
    if settings.threads:
        tf.config.threading.set_intra_op_parallelism_threads(settings.threads)
    keras.mixed_precision.set_dtype_policy(DTYPE_POLICIES[config.training.mixed_precision])
    try:
        dataset = load_dataset(storage, config.data)
        with start_run(storage, settings, config.run_name) as tracker:
            run_dir = settings.runs_dir / tracker.run_id
            run_dir.mkdir(parents=True, exist_ok=True)
            (run_dir / CONFIG_FILE).write_text(dump_config(config), "utf-8")
            tracker.log_params(config.model_dump(mode="json"))
            revision = git_revision()
            tracker.set_tags({"dataset_version": dataset.version_id, "git_revision": revision})
            session = TrainingSession(config, settings, tracker, run_dir)
            trained = _fit_models(session, dataset)
            info = _save_run(session, dataset, trained, command, started)
    finally:
        # The policy is process-wide: a failed run must not leave later models in mixed precision.
        keras.mixed_precision.set_dtype_policy("float32")
    metrics = info.test_metrics
    logger.info(
        "run %s: test top-1 %.3f, macro-F1 %.3f, poison cost %.3f, T=%.2f (%.0f s)",
        info.run_id,
        metrics["top1"],
        metrics["macro_f1"],
        metrics["poison_cost"],
        info.temperature,
        info.train_seconds,
    )
    return TrainResult(info.run_id, run_dir, metrics)


def read_run(run_dir: Path) -> tuple[RunInfo, TrainConfig]:
    """A saved run's info and config."""
    from mushroom_training.config import load_config

    info = RunInfo.model_validate_json((run_dir / RUN_FILE).read_text("utf-8"))
    return info, load_config(run_dir / CONFIG_FILE)
