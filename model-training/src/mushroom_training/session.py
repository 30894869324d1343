"""A training session (config, settings, tracker, history, run folder) and the Keras fitting
helpers every phase shares."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import keras
import numpy as np

from mushroom_training.config import Settings, TrainConfig
from mushroom_training.tracking import Tracker

logger = logging.getLogger(__name__)


class EpochLogger(keras.callbacks.Callback):  # type: ignore[misc]  # keras is untyped
    """Logs every epoch's metrics of one phase to the tracker and the run's history."""

    def __init__(self, tracker: Tracker, phase: str, history: dict[str, list[float]]) -> None:
        super().__init__()
        self.tracker = tracker
        self.phase = phase
        self.history = history

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        # A model with several outputs reports its species accuracy as "species_accuracy".
        metrics = {
            f"{self.phase}/{k.replace('species_accuracy', 'accuracy')}": float(v)
            for k, v in (logs or {}).items()
        }
        for key, value in metrics.items():
            self.history.setdefault(key, []).append(value)
        self.tracker.log_metrics(metrics, step=epoch)


@dataclass
class TrainingSession:
    """What every step of one training run reads or writes: its config and settings, the tracked
    run, the per-epoch history and the local run folder."""

    config: TrainConfig
    settings: Settings
    tracker: Tracker
    run_dir: Path
    history: dict[str, list[float]] = field(default_factory=dict)

    @property
    def batch_size(self) -> int:
        """The batch size of every fit and prediction."""
        return self.config.data.batch_size

    def epoch_logger(self, phase: str) -> EpochLogger:
        """A callback that logs `phase`'s epochs to the tracker and the history."""
        return EpochLogger(self.tracker, phase, self.history)


def class_weights(labels: np.ndarray, num_classes: int) -> dict[int, float]:
    """Inverse-frequency weights of the training views (mean weight 1 per view)."""
    counts = np.bincount(labels, minlength=num_classes)
    return {i: float(len(labels) / (num_classes * c)) if c else 0.0 for i, c in enumerate(counts)}


def one_hot(labels: np.ndarray, n: int) -> np.ndarray:
    """Rows of the n x n identity, one per label."""
    rows: np.ndarray = np.eye(n, dtype=np.float32)[labels]
    return rows


def sample_weights(labels: np.ndarray, weights: dict[int, float] | None) -> np.ndarray | None:
    """Each view's class weight (None without class weights)."""
    if weights is None:
        return None
    return np.array([weights[int(i)] for i in labels], np.float32)


def balanced_weights(
    labels: np.ndarray, num_classes: int, config: TrainConfig
) -> np.ndarray | None:
    """Each view's inverse-frequency weight when the config asks for class weights."""
    weights = class_weights(labels, num_classes) if config.data.class_weights else None
    return sample_weights(labels, weights)


def predict(model: keras.Model, x: np.ndarray, batch_size: int) -> np.ndarray:
    """A model's float32 outputs on x."""
    return np.asarray(model.predict(x, batch_size=batch_size, verbose=0), np.float32)


def early_stopping(config: TrainConfig) -> keras.callbacks.EarlyStopping:
    """Stop when the val loss stops falling, keeping the best weights."""
    return keras.callbacks.EarlyStopping(
        monitor="val_loss",
        patience=config.training.early_stopping_patience,
        restore_best_weights=True,
    )


def fit(
    model: keras.Model,
    train: tuple[np.ndarray, Any, np.ndarray | None],
    val: tuple[np.ndarray, Any],
    epochs: int,
    config: TrainConfig,
    callbacks: list[keras.callbacks.Callback],
    what: str,
) -> None:
    """Fit on in-memory arrays (x, targets, sample weights) with early stopping; log the time."""
    started = time.monotonic()
    x, y, weights = train
    model.fit(
        x,
        y,
        sample_weight=weights,
        validation_data=val,
        epochs=epochs,
        batch_size=config.data.batch_size,
        shuffle=True,
        verbose=0,
        callbacks=[early_stopping(config), *callbacks],
    )
    logger.info("%s done in %.1f s", what, time.monotonic() - started)


def soft_target_loss(soft_target: Any, logits: Any, t: float) -> Any:
    """KL(soft target || softmax(logits / t)), times t^2 so its gradients keep their scale."""
    log_student = keras.ops.log_softmax(logits / t, axis=-1)
    kl = keras.ops.sum(
        soft_target * (keras.ops.log(keras.ops.clip(soft_target, 1e-8, 1.0)) - log_student),
        axis=-1,
    )
    return kl * t * t


def categorical_loss(config: TrainConfig) -> keras.losses.Loss:
    """Cross-entropy on logits with the config's label smoothing."""
    return keras.losses.CategoricalCrossentropy(
        from_logits=True, label_smoothing=config.training.label_smoothing
    )
